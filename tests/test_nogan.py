"""The three NoGAN stages end to end on a tiny generator, and the same under torchrun."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_images
from safetensors.torch import load_file

from revamp.train.config import load_config
from revamp.train.pipeline import run_training

TINY = {
    "model": {"encoder": "mobilenetv3_small_100", "width": 8},
    "data": {"val_count": 2, "workers": 0},
    "degradation": {"jpeg": {"quality": [10, 40]}, "video": {"prob": 0.3}},
    "loss": {"l1": 1.0, "lpips": 0.1},
    "optim": {"lr": 1e-3, "warmup": 2},
    "phases": [{"name": "patches", "patch": 64, "batch": 4, "steps": 8}],
    "critic": {"warmup": 2, "phases": [{"name": "critic", "patch": 64, "batch": 4, "steps": 6}]},
    "gan": {"warmup": 2, "phases": [{"name": "gan", "patch": 64, "batch": 4, "steps": 6}]},
    "log_every": 2,
    "checkpoint_every": 4,
    "val_every": 4,
    "val_qualities": [20],
    "bf16": False,
}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("clean"), 5, 128, 160)


def _rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


# The GAN phase of the field: Real-ESRGAN's U-Net critic, ESRGAN's relativistic loss, R1, the
# adversarial weight from gradient norms, and no PSNR loss allowed against the start.
MODERN = {"critic": dict(TINY["critic"], model={"kind": "unet", "width": 8}, loss="relativistic", r1=1.0),
          "gan": dict(TINY["gan"], adv_grad_ratio=0.1, max_psnr_loss=0.0)}


@pytest.mark.parametrize("variant", [{}, MODERN], ids=["patch-bce", "unet-relativistic-r1-balanced"])
def test_train_all_runs_three_stages_that_each_change_the_weights(image_folder, tmp_path, variant):
    overrides = dict(TINY, data=dict(TINY["data"], train=[str(image_folder)]), **variant)
    run = tmp_path / "run"
    assert run_training("all", None, str(run), overrides=overrides) == 0
    gen = load_file(str(run / "generator" / "final.safetensors"))
    # Stage 1 moved the zero-initialised output layer away from the identity.
    assert gen["to_rgb.weight"].abs().sum() > 0
    # Stage 2 trained the critic: its first conv differs from a fresh critic's with the same seed.
    from revamp.models.critic import CriticConfig, build_critic
    from revamp.models.files import load_critic

    torch.manual_seed(0)
    fresh = build_critic(CriticConfig(**variant.get("critic", TINY["critic"]).get("model", {})))
    critic = load_file(str(run / "critic" / "critic.safetensors"))
    key = "first.weight" if variant else "net.0.0.parametrizations.weight.original"
    assert not torch.equal(critic[key], fresh.state_dict()[key])
    assert type(load_critic(run / "critic" / "critic.safetensors")) is type(fresh)
    # Stage 3 changed the generator again.
    gan = load_file(str(run / "gan" / "final.safetensors"))
    assert any(not torch.equal(gen[k], gan[k]) for k in gen)
    for stage in ("generator", "critic", "gan"):
        assert _rows(run / stage / "train.csv"), stage
        assert _rows(run / stage / "val.csv"), stage
        assert list((run / stage / "tensorboard").glob("events.out.tfevents.*")), stage
    gan_val = _rows(run / "gan" / "val.csv")
    assert gan_val[0]["step"] == "0" and {"lpips", "gain_q20"} <= set(gan_val[0])  # the pre-GAN generator is a candidate
    if variant:
        gan_train = _rows(run / "gan" / "train.csv")
        assert all(float(r["r1"]) > 0 and float(r["adv_weight"]) > 0 for r in gan_train)
        # max_psnr_loss 0: the chosen checkpoint gains at least what the starting generator did.
        best = json.loads((run / "gan" / "checkpoint.json").read_text())["state"]["best"]
        assert best["gain_mean"] >= float(gan_val[0]["gain_mean"]) - 1e-9
    assert (run / "model.safetensors").is_file()
    # The GAN file's recipe keeps the recipe of the stage-1 generator it started from.
    from revamp.models.files import read_metadata

    recipe = json.loads(read_metadata(run / "gan" / "final.safetensors")["recipe"])
    chain = recipe["init_recipe"]
    assert chain["file"] == "best.safetensors" and chain["stage"] == "generator-pretrain" and chain["init_recipe"] is None
    # So the GAN file's compute counts the generator it went on from.
    from revamp.models.files import training_runs

    assert recipe["init"] == "best.safetensors" and [r["stage"] for r in training_runs(recipe)] == ["nogan-gan", "generator-pretrain"]
    from revamp.cli import main

    assert main(["train", "plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 10_000


def test_torchrun_two_processes(image_folder, tmp_path):
    import yaml

    cfg = dict(TINY, data=dict(TINY["data"], train=[str(image_folder)]), phases=[{"name": "p", "patch": 64, "batch": 4, "steps": 6}])
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "revamp.cli", "train", "generator",
                           "--config", str(config), "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "run" / "generator"
    steps = [int(r["step"]) for r in _rows(out / "val.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == 6  # one writer (rank 0), no duplicate rows
    from revamp.models.files import load_model

    model, meta = load_model(out / "final.safetensors")
    assert meta["recipe"]["processes"] == 2 and meta["recipe"]["steps"] == 6


def test_config_stage_sections_are_merged():
    cfg = load_config(None, {"gan": {"adv_weight": 0.5}})
    assert cfg["gan"]["adv_weight"] == 0.5 and cfg["gan"]["betas"] == [0.0, 0.9]


@pytest.mark.parametrize("kind,loss,r1", [("patch", "bce", 0.0), ("unet", "hinge", 0.0), ("unet", "relativistic", 0.1)])
def test_critic_learns_to_tell_subtly_smoothed_patches_from_originals(kind, loss, r1):
    """The pre-training the critic gets: originals against patches that differ by a few grey
    levels (a light blur, like a restoration's). It must rank the original above the smoothed
    patch (pair accuracy: spectral norm keeps logits small, so their sign alone says little)."""
    import torch.nn.functional as F
    from conftest import natural_image

    from revamp.models.critic import CriticConfig, build_critic
    from revamp.train.nogan import critic_step

    torch.manual_seed(0)
    big = torch.from_numpy(natural_image(256, 256, seed=7)).permute(2, 0, 1).float() / 255
    kernel = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16
    kernel = (kernel[:, None] * kernel[None, :]).expand(3, 1, 5, 5)

    def batch(n, gen):
        ys, xs = torch.randint(0, 256 - 32, (2, n), generator=gen)
        clean = torch.stack([big[:, y : y + 32, x : x + 32] for y, x in zip(ys.tolist(), xs.tolist())])
        return clean, F.conv2d(F.pad(clean, (2, 2, 2, 2), mode="reflect"), kernel, groups=3)

    critic = build_critic(CriticConfig(kind=kind, width=16, dropout=0.0))
    opt = torch.optim.Adam(critic.parameters(), lr=5e-4, betas=(0.0, 0.9))
    gen = torch.Generator().manual_seed(1)
    for _ in range(150):
        clean, fake = batch(16, gen)
        critic_step(critic, opt, loss, r1, clean, fake)
    critic.eval()
    clean, fake = batch(64, torch.Generator().manual_seed(99))
    with torch.no_grad():
        real, fake = critic(clean).mean((1, 2, 3)), critic(fake).mean((1, 2, 3))
    assert (real > fake).float().mean() > 0.9
    assert (real - fake).mean() > 0.1


def test_unet_critic_scores_every_pixel_of_any_size():
    from revamp.models.critic import CriticConfig, UNetCritic

    critic = UNetCritic(CriticConfig(kind="unet", width=8))
    assert critic(torch.rand(2, 3, 37, 50)).shape == (2, 1, 37, 50)


def test_balanced_weight_sets_the_adversarial_gradient_to_a_fraction_of_the_content_gradient():
    from revamp.train.nogan import balanced_weight

    torch.manual_seed(0)
    last = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(8, 4)
    out = x @ last
    content, adv = (out - 1).pow(2).mean(), -1e-3 * out.sin().mean()  # an adversarial term 1000x too small
    weight = balanced_weight(adv, content, last, 0.2)
    g_content, = torch.autograd.grad(content, last, retain_graph=True)
    g_adv, = torch.autograd.grad(weight * adv, last)
    assert float(g_adv.norm()) == pytest.approx(0.2 * float(g_content.norm()), rel=1e-4)


def test_gan_losses_reward_the_critic_for_ranking_originals_above_restorations():
    from revamp.train.nogan import adversarial_loss, critic_loss

    real, fake = torch.full((4, 1, 2, 2), 2.0), torch.full((4, 1, 2, 2), -2.0)
    for kind in ("bce", "hinge", "relativistic"):
        assert critic_loss(kind, real, fake) < critic_loss(kind, fake, real), kind
        # The generator's term falls as its restorations look more real.
        assert adversarial_loss(kind, real, real - 1) < adversarial_loss(kind, real, fake), kind
    assert critic_loss("hinge", real, fake) == 0  # past the margin: nothing left to learn
