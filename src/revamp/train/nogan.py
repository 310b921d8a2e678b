"""NoGAN stages 2 and 3: pre-train the critic on the pre-trained generator's outputs, then a
short, stable GAN phase that removes the remaining high-frequency artifacts at edges.

The GAN phase uses Adam with betas (0, 0.9) for both networks; the generator loss is the
adversarial term, weighted by ``adv_weight`` (or, with ``adv_grad_ratio``, so that its gradient
at the generator's last layer is that fraction of the content loss's: VQGAN's adaptive weight),
plus the configured perceptual/pixel loss. The critic's loss (``critic.loss``: the original
non-saturating GAN, hinge, or ESRGAN's relativistic average) and R1 penalty (``critic.r1``) are
the same in both stages. The best checkpoint is the one with the lowest validation LPIPS among
those that lose at most ``max_psnr_loss`` dB of PSNR gain against the starting generator (the
paper picked it by eye).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from revamp.models.contract import forward
from revamp.models.critic import CriticConfig, build_critic
from revamp.models.files import load_critic, load_model, save_critic, save_model
from revamp.train.common import StageTrainer, validation_input
from revamp.train.generator import GeneratorOutputs, recipe, source_recipe
from revamp.train.losses import WeightedLoss


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def critic_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic's loss on the logits of originals and of restorations."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "relativistic":  # is the original more real than the average restoration, and vice versa
        return _bce(real - fake.mean(), 1.0) + _bce(fake - real.mean(), 0.0)
    return _bce(real, 1.0) + _bce(fake, 0.0)


def adversarial_loss(kind: str, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial term; ``real`` (detached logits of the originals) only for relativistic."""
    if kind == "hinge":
        return -fake.mean()
    if kind == "relativistic":
        return _bce(real - fake.mean(), 0.0) + _bce(fake - real.mean(), 1.0)
    return _bce(fake, 1.0)


def critic_step(critic, optimizer, kind: str, r1: float, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """One update of the critic on originals and (detached) restorations, with the R1 penalty
    (Mescheder et al. 2018: the squared gradient norm of the critic at the originals) when r1 > 0.
    The penalty is on each picture's mean logit, so it does not grow with the number of logits."""
    if r1 > 0:
        real = real.detach().requires_grad_(True)
    real_logits, fake_logits = critic(real), critic(fake)
    loss = critic_loss(kind, real_logits, fake_logits)
    parts = {}
    if r1 > 0:
        grad, = torch.autograd.grad(real_logits.flatten(1).mean(1).sum(), real, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean()
        loss = loss + r1 / 2 * penalty
        parts["r1"] = float(penalty.detach())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"critic_loss": float(loss.detach()), "real_acc": float((real_logits > 0).float().mean()),
            "fake_acc": float((fake_logits < 0).float().mean()), "logit_gap": float((real_logits.mean() - fake_logits.mean()).detach()), **parts}


def balanced_weight(adv: torch.Tensor, content: torch.Tensor, last: torch.Tensor, ratio: float) -> float:
    """The adversarial weight that makes its gradient at ``last`` (the generator's last layer)
    ``ratio`` times the content loss's (Esser et al. 2021, VQGAN): the balance stays put while
    the critic's logits grow or shrink by orders of magnitude."""
    g_content, = torch.autograd.grad(content, last, retain_graph=True)
    g_adv, = torch.autograd.grad(adv, last, retain_graph=True)
    return float((ratio * g_content.norm() / (g_adv.norm() + 1e-12)).clamp(0, 1e4))


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
        self.critic = build_critic(CriticConfig(**c["model"])).to(self.device)
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
        c = self.cfg["critic"]
        return critic_step(self.ddp, self.opt, c["loss"], c["r1"], clean, fake)

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
        self.generator_file = Path(generator_file)
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
        c = self.cfg["critic"]
        critic_parts = critic_step(self.c_ddp, self.c_opt, c["loss"], c["r1"], clean, fake.detach().clamp(0, 1))
        # Generator step: fool the (frozen) critic, stay close to the original. The plain module,
        # not its DDP wrapper: nothing of the critic is updated here.
        self.critic.requires_grad_(False)
        real_logits = None
        if c["loss"] == "relativistic":
            with torch.no_grad():
                real_logits = self.critic(clean)
        adv = adversarial_loss(c["loss"], real_logits, self.critic(fake.clamp(0, 1)))
        content, parts = self.loss(fake, clean)
        weight = balanced_weight(adv, content, self.model.to_rgb.weight, g["adv_grad_ratio"]) if g["adv_grad_ratio"] > 0 else g["adv_weight"]
        g_loss = weight * adv + content
        self.g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["optim"]["grad_clip"] or 1.0)
        self.g_opt.step()
        self.critic.requires_grad_(True)
        return {"g_loss": float(g_loss.detach()), "adv": float(adv.detach()), "adv_weight": weight, **critic_parts, **parts}

    def validate(self) -> None:
        super().validate()
        if self.state["best"] is not None:
            self.state.setdefault("start", self.state["best"])  # the first validation is the starting generator's

    def better(self, result: dict, best: dict) -> bool:
        """Judged on perception, within a bound on the fidelity it may cost."""
        floor = self.state["start"]["gain_mean"] - self.cfg["gan"]["max_psnr_loss"]
        return result["gain_mean"] >= floor and result["lpips"] < best["lpips"]

    def export(self, name: str) -> Path:
        path = self.run_dir / f"{name}.safetensors"
        # The GAN phase goes on from its generator: ``init`` names it, so the file's compute counts its whole chain.
        extra = {"init": self.generator_file.name, "gan": {k: v for k, v in self.cfg["gan"].items() if k != "phases"},
                 "critic": {k: v for k, v in self.cfg["critic"].items() if k != "phases"}}
        save_model(self.model, path, name=self.cfg["name"], task=self.cfg["task"], recipe=recipe(self, "nogan-gan", extra))
        return path

