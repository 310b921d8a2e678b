"""NoGAN stages 2 and 3: pre-train the critic on the pre-trained generator's outputs, then a
short, stable GAN phase that removes the remaining high-frequency artifacts at edges.

The GAN phase uses Adam with betas (0, 0.9) for both networks; the generator loss is
``adv_weight`` x adversarial + the configured perceptual/pixel loss. Its best checkpoint is
chosen by validation LPIPS (the paper picked it by eye).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from revamp.models.contract import forward
from revamp.models.critic import CriticConfig, PatchCritic
from revamp.models.files import load_critic, load_model, save_critic, save_model
from revamp.train.common import StageTrainer, validation_input
from revamp.train.generator import GeneratorOutputs, recipe, source_recipe
from revamp.train.losses import WeightedLoss


def _critic_loss(critic, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    real_logits, fake_logits = critic(real), critic(fake)
    loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits)) + \
        F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return loss, float((real_logits > 0).float().mean()), float((fake_logits < 0).float().mean())


def _load_generator(path: Path, device, channels_last: bool):
    model, _ = load_model(path, device)
    model.train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


class CriticTrainer(StageTrainer):
    """Stage 2: the critic learns to tell originals from the frozen generator's outputs."""

    stage = "critic"

    def __init__(self, cfg: dict, run_dir: Path, generator_file: Path, device=None, quiet: bool = False, data=None):
        super().__init__(cfg, run_dir, device, quiet, data)
        self.generator = _load_generator(generator_file, self.device, cfg["channels_last"]).eval().requires_grad_(False)
        c = cfg["critic"]
        self.critic = PatchCritic(CriticConfig(**c["model"])).to(self.device)
        self.ddp = DistributedDataParallel(self.critic) if self.dist.world > 1 else self.critic
        self.opt = torch.optim.Adam(self.critic.parameters(), lr=c["lr"], betas=(0.0, 0.9))
        self.modules, self.optimizers = {"critic": self.critic}, {"critic": self.opt}

    def phases(self) -> list[dict]:
        return self.cfg["critic"]["phases"]

    def schedule(self) -> tuple[int, float]:
        return self.cfg["critic"]["warmup"], 1.0

    def train_step(self, degraded, clean, lr_factor) -> dict[str, float]:
        self.set_lr(self.opt, self.cfg["critic"]["lr"], lr_factor)
        with torch.no_grad(), self.autocast():
            fake = self.generator(degraded).float().clamp(0, 1)
        loss, real_acc, fake_acc = _critic_loss(self.ddp, clean, fake)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"critic_loss": float(loss.detach()), "real_acc": real_acc, "fake_acc": fake_acc}

    def validate(self) -> None:
        """Critic on held-out images (originals vs generator outputs): how often it scores the
        original above the restoration (pair accuracy, what the GAN phase's gradient relies on),
        threshold accuracies, and the mean logit gap."""
        if self.data.val is None:
            return
        from revamp.data.pairs import to_tensor

        self.critic.eval()
        rows = []
        with torch.no_grad():
            for _, clean, degraded, step in self.data.val.items[:: max(1, len(self.data.val.items) // 16)]:
                x = validation_input(self.generator, degraded, step, self.device)
                fake = forward(self.generator, x, self.generator.size_multiple, self.generator.config.scale)
                real_logit, fake_logit = self.critic(to_tensor(clean)[None].to(self.device)), self.critic(fake)
                rows.append((float(real_logit.mean()), float(fake_logit.mean()), float((real_logit > 0).float().mean()),
                             float((fake_logit < 0).float().mean())))
        self.critic.train()
        n = len(rows)
        result = {"pair_acc": sum(r > f for r, f, _, _ in rows) / n, "real_acc": sum(r[2] for r in rows) / n,
                  "fake_acc": sum(r[3] for r in rows) / n, "logit_gap": sum(r - f for r, f, _, _ in rows) / n}
        self.log.write("val.csv", self.state["step"], {k: round(v, 4) for k, v in result.items()})
        if not self.quiet:
            tqdm.write(f"critic step {self.state['step']}: held-out pair accuracy {result['pair_acc']:.2f} "
                       f"(real {result['real_acc']:.2f}, generated {result['fake_acc']:.2f}), logit gap {result['logit_gap']:.3f}")

    def finish(self) -> None:
        save_critic(self.critic, self.run_dir / "critic.safetensors")


class GanTrainer(GeneratorOutputs):
    """Stage 3: a short GAN phase from the pre-trained generator and critic."""

    stage = "gan"
    # The pre-GAN generator competes for "best": a GAN phase that makes things worse ships nothing worse.
    validate_first = True

    def __init__(self, cfg: dict, run_dir: Path, generator_file: Path, critic_file: Path, device=None, quiet: bool = False, data=None):
        super().__init__(cfg, run_dir, device, quiet, data)
        g = cfg["gan"]
        self.model = _load_generator(generator_file, self.device, cfg["channels_last"])
        self.source_recipe = source_recipe(generator_file)
        self.critic = load_critic(critic_file).to(self.device)
        self.g_ddp = DistributedDataParallel(self.model) if self.dist.world > 1 else self.model
        self.c_ddp = DistributedDataParallel(self.critic) if self.dist.world > 1 else self.critic
        self.g_opt = torch.optim.Adam(self.model.parameters(), lr=g["lr"], betas=tuple(g["betas"]))
        self.c_opt = torch.optim.Adam(self.critic.parameters(), lr=g["critic_lr"], betas=tuple(g["betas"]))
        self.loss = WeightedLoss(g["loss"]).to(self.device)
        self.modules = {"model": self.model, "critic": self.critic}
        self.optimizers = {"model": self.g_opt, "critic": self.c_opt}

    def phases(self) -> list[dict]:
        return self.cfg["gan"]["phases"]

    def schedule(self) -> tuple[int, float]:
        return self.cfg["gan"]["warmup"], 1.0

    def train_step(self, degraded, clean, lr_factor) -> dict[str, float]:
        g = self.cfg["gan"]
        self.set_lr(self.g_opt, g["lr"], lr_factor)
        self.set_lr(self.c_opt, g["critic_lr"], lr_factor)
        if self.cfg["channels_last"]:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            fake = self.g_ddp(degraded)
        fake = fake.float()
        # Critic step on detached outputs.
        c_loss, real_acc, fake_acc = _critic_loss(self.c_ddp, clean, fake.detach().clamp(0, 1))
        self.c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        self.c_opt.step()
        # Generator step: fool the (frozen) critic, stay close to the original. The plain module,
        # not its DDP wrapper: nothing of the critic is updated here.
        self.critic.requires_grad_(False)
        logits = self.critic(fake.clamp(0, 1))
        adv = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        content, parts = self.loss(fake, clean)
        g_loss = g["adv_weight"] * adv + content
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["grad_clip"] or 1.0)
        self.g_opt.step()
        self.critic.requires_grad_(True)
        return {"g_loss": float(g_loss.detach()), "adv": float(adv.detach()), "critic_loss": float(c_loss.detach()),
                "real_acc": real_acc, "fake_acc": fake_acc, **parts}

    def better(self, result: dict, best: dict) -> bool:
        return result["lpips"] < best["lpips"]  # the GAN phase is judged on perception only

    def export(self, name: str) -> Path:
        path = self.run_dir / f"{name}.safetensors"
        extra = {"gan": {k: v for k, v in self.cfg["gan"].items() if k != "phases"}}
        save_model(self.model, path, name=self.cfg["name"], task=self.cfg["task"], recipe=recipe(self, "nogan-gan", extra))
        return path

