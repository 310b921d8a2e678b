import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import natural_image, write_images

from revamp.data.degrade import JpegDegradation, SRDegradation, double_jpeg, jpeg
from revamp.data.pairs import PairDataset
from revamp.train.config import load_config
from revamp.train.generator import GeneratorTrainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def image_folder(tmp_path):
    return write_images(tmp_path / "clean", 6, 160, 192)


def tiny_config(folder, **extra):
    cfg = {
        "model": {"encoder": "mobilenetv3_small_100", "width": 8},
        "data": {"train": [str(folder)], "val_count": 2, "workers": 0},
        "phases": [{"name": "patches", "patch": 64, "batch": 4, "steps": 6}, {"name": "full", "patch": 128, "batch": 2, "steps": 4}],
        "optim": {"warmup": 2},
        "checkpoint_every": 3,
        "val_every": 100,
        "val_qualities": [20],
        "bf16": False,
    }
    cfg.update(extra)
    return load_config(None, cfg)


def test_degradations_are_deterministic_and_lossy():
    img = natural_image(64, 64)
    deg = JpegDegradation(quality=(10, 30), double_prob=0.5)
    a = deg(img, np.random.default_rng(3))
    b = deg(img, np.random.default_rng(3))
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    assert double_jpeg(img, 30, 20, (3, 5)).shape == img.shape
    assert jpeg(img, 95).shape == img.shape
    sr = SRDegradation(scale=4, jpeg=deg)
    assert sr(img, np.random.default_rng(0)).shape == (16, 16, 3)


def test_pair_dataset_index_determines_sample():
    images = [natural_image(100, 120, seed=s) for s in range(3)]
    ds = PairDataset(images, 32, SRDegradation(scale=2, jpeg=JpegDegradation()), seed=7, scale=2)
    x1, y1 = ds[5]
    x2, y2 = ds[5]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (3, 32, 32) and y1.shape == (3, 64, 64)


def test_codec_aware_pairs_carry_the_true_step_or_blind_planes():
    from revamp.codec import condition_value, ijg_table, jpeg_step

    images = [natural_image(100, 120, seed=s) for s in range(3)]
    deg = JpegDegradation(quality=(30, 30))
    ds = PairDataset(images, 32, deg, seed=7, condition=True, blind_prob=0.25)
    plain = PairDataset(images, 32, deg, seed=7)
    told = torch.tensor(float(condition_value(jpeg_step(ijg_table(30)))))
    blind = 0
    for i in range(80):
        x, y = ds[i]
        x0, y0 = plain[i]
        assert x.shape == (5, 32, 32) and torch.equal(x[:3], x0) and torch.equal(y, y0)  # same samples as a blind run
        if x[4].any():
            assert torch.all(x[4] == 1) and torch.allclose(x[3], told)
        else:
            blind += 1
            assert not x[3].any()
    assert 10 <= blind <= 30


def test_a_gray_share_of_the_pairs_are_gray_jpegs_of_the_luma():
    images = [natural_image(100, 120, seed=s) for s in range(3)]
    deg = JpegDegradation(quality=(20, 20), subsampling={"4:2:0": 1.0})
    ds = PairDataset(images, 32, deg, seed=7, gray_prob=0.3)
    grays = 0
    for i in range(60):
        x, y = ds[i]
        if torch.equal(y[0], y[1]) and torch.equal(y[0], y[2]):
            grays += 1
            # the clean target is the luma, the input that luma's one-component JPEG
            assert torch.equal(x[0], x[1]) and torch.equal(x[0], x[2])
            gray = (y[0] * 255).round().to(torch.uint8).numpy()
            assert torch.equal(x[0], torch.from_numpy(np.array(jpeg(gray, 20))).float() / 255)
    assert 8 <= grays <= 30


def _weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_interrupted_and_resumed_run_ends_with_identical_weights(image_folder, tmp_path):
    cfg = tiny_config(image_folder)
    straight = GeneratorTrainer(cfg, tmp_path / "straight", device=torch.device("cpu"), quiet=True)
    straight.train()

    first = GeneratorTrainer(cfg, tmp_path / "resumed", device=torch.device("cpu"), quiet=True)
    first.train(stop_at_step=7)  # stops inside phase 2, after a checkpoint
    assert first.state["step"] == 7
    assert (tmp_path / "resumed" / "last.safetensors").is_file()  # the weights at the stop, as a model file
    second = GeneratorTrainer(cfg, tmp_path / "resumed", device=torch.device("cpu"), quiet=True)
    second.resume()
    assert second.state["step"] == 7
    second.train()
    assert second.state["step"] == straight.state["step"] == 10
    a, b = _weights(straight), _weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for name in ("final.safetensors", "best.safetensors", "train.csv", "val.csv"):
        assert (tmp_path / "resumed" / name).is_file()


@pytest.mark.parametrize("select, kept", [("psnr", 2), ("last", 6)])
def test_select_last_keeps_the_latest_validated_weights_whatever_they_score(image_folder, tmp_path, select, kept):
    """``select: last`` (runs whose validation does not rank what they train for): best.safetensors
    is the latest validated weights even as the validation score falls; ``psnr`` keeps the highest."""
    from safetensors.torch import load_file

    cfg = tiny_config(image_folder, select=select, val_every=2, phases=[{"name": "patches", "patch": 64, "batch": 2, "steps": 6}])
    trainer = GeneratorTrainer(cfg, tmp_path / "run", device=torch.device("cpu"), quiet=True)
    falling = iter([{"gain_mean": g, "lpips": 0.1} for g in (0.5, 0.4, 0.3, 0.2)])
    trainer.data.val.evaluate = lambda *args: next(falling)
    trainer.train()
    assert trainer.state["best"]["step"] == kept
    best, final = load_file(tmp_path / "run" / "best.safetensors"), load_file(tmp_path / "run" / "final.safetensors")
    assert all(torch.equal(best[k], final[k]) for k in final) == (select == "last")


def test_a_pause_inside_the_speed_probe_does_not_shrink_a_timed_phase(image_folder, tmp_path, monkeypatch):
    # A fake clock: every step takes 0.5 s, and one step in the probe window sees a 1000 s pause
    # (SIGSTOP while another job runs). The phase must still be sized for 2 steps/s.
    from revamp.train import common

    clock = {"now": 0.0}
    monkeypatch.setattr(common.time, "monotonic", lambda: clock["now"])
    cfg = tiny_config(image_folder, phases=[{"name": "timed", "patch": 64, "batch": 2, "minutes": 0.5}])
    trainer = GeneratorTrainer(cfg, tmp_path / "run", device=torch.device("cpu"), quiet=True)
    step = trainer.train_step

    def timed_step(*args):
        clock["now"] += 1000.5 if trainer.state["step"] == 25 else 0.5
        return step(*args)

    trainer.train_step = timed_step
    trainer.train(stop_at_step=common.RATE_PROBE_STEPS[1] + 1)
    assert trainer.state["phase_steps"] == [60]  # 0.5 min at 2 steps/s; the mean step would give 41


def test_a_model_grown_by_a_whole_transfer_counts_its_source_training(image_folder, tmp_path):
    """Added head blocks take every tensor of the source: the new file's compute includes the source's."""
    from revamp.models.files import read_metadata, training_compute

    phases = [{"name": "patches", "patch": 64, "batch": 2, "steps": 3}]
    source = GeneratorTrainer(tiny_config(image_folder, phases=phases), tmp_path / "source", device=torch.device("cpu"), quiet=True)
    source.train()
    grown_cfg = tiny_config(image_folder, phases=phases, transfer=str(tmp_path / "source" / "final.safetensors"),
                            model={"encoder": "mobilenetv3_small_100", "width": 8, "head_blocks": 1})
    grown = GeneratorTrainer(grown_cfg, tmp_path / "grown", device=torch.device("cpu"), quiet=True)
    grown.train()
    recipe = json.loads(read_metadata(tmp_path / "grown" / "final.safetensors")["recipe"])
    assert recipe["transfer"] == {"file": "final.safetensors", "copied": len(source.model.state_dict()), "fresh": 4, "whole": True}
    assert training_compute(recipe)["steps"] == 6 and training_compute(recipe)["samples"] == 12
    assert recipe["video_rgb"] == "exact"  # so `revamp video` gives it frames as its training did (exact_video_rgb)


def test_ema_of_the_weights_is_exported_and_resumes_exactly(image_folder, tmp_path):
    """optim.ema: the exported model is the moving average of the weights (not the raw weights),
    updated once per step, and an interrupted run resumes it exactly."""
    from revamp.models.files import load_model

    cfg = tiny_config(image_folder, optim={"warmup": 2, "ema": 0.5})
    straight = GeneratorTrainer(cfg, tmp_path / "straight", device=torch.device("cpu"), quiet=True)
    before = {k: v.clone() for k, v in straight.ema.state_dict().items()}
    straight.train()
    model, ema = straight.model.state_dict(), straight.ema.state_dict()
    params = {name for name, _ in straight.model.named_parameters()}  # buffers (BatchNorm statistics) are copied, not averaged
    moved = [k for k in params if float((model[k] - before[k]).abs().max()) > 1e-4]
    assert moved and all(not torch.equal(ema[k], model[k]) and not torch.equal(ema[k], before[k]) for k in moved)
    final, _ = load_model(tmp_path / "straight" / "final.safetensors")
    k = moved[0]
    assert torch.allclose(final.state_dict()[k].float(), ema[k].float(), atol=1e-3) and not torch.allclose(final.state_dict()[k].float(), model[k].float(), atol=1e-6)
    first = GeneratorTrainer(cfg, tmp_path / "resumed", device=torch.device("cpu"), quiet=True)
    first.train(stop_at_step=7)
    second = GeneratorTrainer(cfg, tmp_path / "resumed", device=torch.device("cpu"), quiet=True)
    second.resume()
    second.train()
    assert all(torch.equal(v, second.ema.state_dict()[k]) for k, v in ema.items())
    plain = GeneratorTrainer(tiny_config(image_folder), tmp_path / "plain", device=torch.device("cpu"), quiet=True)
    plain.train(stop_at_step=3)
    with pytest.raises(ValueError, match="no 'ema' weights"):  # made without optim.ema: a clear error, not a crash
        GeneratorTrainer(cfg, tmp_path / "plain", device=torch.device("cpu"), quiet=True).resume()


def test_frozen_batchnorm_keeps_the_statistics_and_trains_the_rest(image_folder, tmp_path):
    """optim.frozen_batchnorm: the running statistics stay those of the start, through the
    validations in between (which put the model back in training mode), while the weights train."""
    cfg = tiny_config(image_folder, optim={"warmup": 2, "frozen_batchnorm": True}, val_every=3)
    trainer = GeneratorTrainer(cfg, tmp_path / "run", device=torch.device("cpu"), quiet=True)
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    now = trainer.model.state_dict()
    stats = [k for k in now if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(now[k], start[k]) for k in stats)
    assert any(not torch.equal(now[k], start[k]) for k, _ in trainer.model.named_parameters())
    plain = GeneratorTrainer(tiny_config(image_folder, optim={"warmup": 2}), tmp_path / "plain", device=torch.device("cpu"), quiet=True)
    plain_start = {k: plain.model.state_dict()[k].clone() for k in stats}
    plain.train(stop_at_step=2)
    assert any(not torch.equal(plain.model.state_dict()[k], plain_start[k]) for k in stats)  # the default follows the batches


def test_compiled_training_forward_trains_as_eager_and_resumes_exactly(image_folder, tmp_path):
    """compile: true compiles the training forward only: the run follows the eager one (to float
    rounding), its model files are the plain module's, and it resumes exactly."""
    from revamp.models.files import load_model

    def trainer(name, compiled):
        cfg = tiny_config(image_folder, phases=[{"name": "patches", "patch": 64, "batch": 4, "steps": 6}], compile=compiled)
        return GeneratorTrainer(cfg, tmp_path / name, device=torch.device("cpu"), quiet=True)

    eager = trainer("eager", False)
    start = _weights(eager)
    eager.train()
    straight = trainer("straight", True)
    straight.train()
    first = trainer("resumed", True)
    first.train(stop_at_step=4)
    second = trainer("resumed", True)
    second.resume()
    second.train()
    e, a, b = _weights(eager), _weights(straight), _weights(second)
    floats = [k for k, v in e.items() if v.is_floating_point()]
    moved = max(float((e[k] - start[k]).abs().max()) for k in floats)
    drift = max(float((a[k] - e[k]).abs().max()) for k in floats)
    assert drift < 0.05 * moved, (drift, moved)
    assert second.state["step"] == 6 and all(torch.equal(a[k], b[k]) for k in e)
    final, _ = load_model(tmp_path / "resumed" / "final.safetensors")
    assert final.state_dict().keys() == e.keys()


def test_training_beats_the_jpeg_on_held_out_images(image_folder, tmp_path):
    cfg = tiny_config(
        image_folder,
        model={"encoder": "mobilenetv3_small_100", "width": 16},
        phases=[{"name": "patches", "patch": 64, "batch": 8, "steps": 120}],
        optim={"lr": 2e-3, "warmup": 10},
        degradation={"jpeg": {"quality": [10, 10]}},
        val_qualities=[10],
    )
    trainer = GeneratorTrainer(cfg, tmp_path / "run", device=torch.device("cpu"), quiet=True)
    trainer.train()
    # The untrained net is the identity (gain 0); the trained one must beat the JPEG.
    assert trainer.state["best"]["gain_q10"] > 0.05


def test_exponent_numbers_are_floats_in_configs_and_set(tmp_path):
    """PyYAML (YAML 1.1) would read 2e-4 as a string; a learning rate must come out a float."""
    from revamp.cli import _parse_set

    path = tmp_path / "c.yaml"
    path.write_text("optim: {lr: 2e-4, min_lr: 5.0e-6}\nname: 1e3x\n")
    cfg = load_config(path, _parse_set(["optim.warmup=1E2"]))
    assert cfg["optim"]["lr"] == 2e-4 and cfg["optim"]["min_lr"] == 5e-6 and cfg["optim"]["warmup"] == 100.0
    assert cfg["name"] == "1e3x"  # not a number: stays a string


def test_set_on_one_loss_term_keeps_the_others(tmp_path):
    """--set loss.lpips=0.01 changes that term; --set loss={...} replaces the loss; a mapping such
    as data merges key by key."""
    from revamp.cli import _parse_set

    path = tmp_path / "c.yaml"
    path.write_text("loss: {charbonnier: 1.0, lpips: 0.05}\ndata: {val_count: 12}\n")
    cfg = load_config(path, _parse_set(["loss.lpips=0.01", "data={workers: 3}"]))
    assert cfg["loss"] == {"charbonnier": 1.0, "lpips": 0.01}
    assert cfg["data"]["val_count"] == 12 and cfg["data"]["workers"] == 3
    assert load_config(path, _parse_set(["loss={l1: 1.0}"]))["loss"] == {"l1": 1.0}
    with pytest.raises(ValueError, match="not a mapping"):
        load_config(path, _parse_set(["seed.x=1"]))


def test_config_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").rglob("*.yaml")))
def test_every_shipped_config_loads_and_its_committed_weights_exist(path):
    """A config that starts from committed weights names a file that is there (one that continues
    an earlier stage names that stage's run folder instead)."""
    cfg = load_config(REPO / path)
    for key in ("init", "transfer"):
        if cfg.get(key) and not cfg[key].startswith("runs/"):
            assert (REPO / cfg[key]).is_file(), f"{path}: {key} {cfg[key]} is missing"


@pytest.mark.parametrize("yaml_text,sets,named", [
    ("", ["optim.lrr=0.001"], "optim.lrr"),  # unknown at depth, from --set
    ("", ["optim.lr=fast"], "optim.lr"),  # wrong type
    ("phases: [{name: p, patch: 64, batch: 4, steps: -3}]\n", [], "steps"),  # a negative step count
    ("degradation: {jpeg: {qualty: [10, 20]}}\n", [], "qualty"),  # unknown, two levels down in the file
    ("model: {width: 32}\nmodel: {width: 16}\n", [], "duplicate key 'model'"),
    ("loss: {charbonier: 1.0}\n", [], "charbonier"),
    ("degradation: {video: {weights: {h265: -2}}}\n", [], "h265"),  # negative odds
])
def test_bad_configs_fail_at_once_with_one_line_naming_the_key(tmp_path, yaml_text, sets, named):
    """`revamp train` refuses before any work starts (no run folder is written), in one line."""
    import subprocess
    import sys

    config = tmp_path / "c.yaml"
    config.write_text("name: bad\n" + yaml_text)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "revamp.cli", "train", "generator", "--config", str(config), "-o", str(run)]
    for item in sets:
        args += ["--set", item]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1 and named in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not run.exists()


@pytest.mark.parametrize("codec,q", [("h264", 37), ("h265", 37), ("mpeg2", 12), ("mpeg4", 12)])
def test_video_codec_round_trip(codec, q):
    from revamp.data.degrade import VideoDegradation, video_roundtrip
    from revamp.metrics import psnr

    frames = [natural_image(64, 96, seed=1)[i : i + 48, i : i + 80] for i in range(5)]
    out = video_roundtrip(frames, codec, q)
    assert len(out) == 5 and all(o.shape == f.shape for o, f in zip(out, frames))
    assert 20 < psnr(out[2], frames[2]) < 45  # damaged, but still the same picture
    deg = VideoDegradation(codecs={codec: (q, q)})
    img = natural_image(64, 64, seed=2)
    a, b = deg(img, np.random.default_rng(1)), deg(img, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.shape == img.shape


def test_camera_motion_moves_a_still_by_sub_pixel_pan_zoom_and_roll():
    """`motion: affine` clips: the sampled frame is the still itself, the others views of it that
    no whole-pixel shift reproduces (resampled), further from it the further from the sampled frame."""
    from revamp.data.degrade import VideoDegradation, camera_clip
    from revamp.train.config import load_config

    img = natural_image(64, 64, seed=5)
    clip = camera_clip(img, 5, 1, 4, np.random.default_rng(3))
    assert len(clip) == 5 and clip[1] is img and all(f.shape == img.shape and f.dtype == np.uint8 for f in clip)
    diff = [float(np.abs(f.astype(int) - img).mean()) for f in clip]
    assert 0 < diff[0] and 0 < diff[2] < diff[3] < diff[4]
    shifts = [np.roll(img, (dy, dx), (0, 1)) for dy in range(-12, 13) for dx in range(-12, 13)]
    assert min(float(np.abs(s[12:-12, 12:-12].astype(int) - clip[2][12:-12, 12:-12]).mean()) for s in shifts) > 1
    deg = VideoDegradation(codecs={"h264": (37, 37)}, motion="affine")
    a, b = deg.sample(img, np.random.default_rng(1)), deg.sample(img, np.random.default_rng(1))
    assert np.array_equal(a[0], b[0]) and a[0].shape == img.shape and a[1] == b[1] is not None
    assert load_config(None, {"degradation.video.motion": "affine"})["degradation"]["video"]["motion"] == "affine"
    with pytest.raises(ValueError):
        load_config(None, {"degradation.video.motion": "wobble"})


def test_stronger_quantiser_loses_more():
    from revamp.data.degrade import video_roundtrip
    from revamp.metrics import psnr

    frames = [natural_image(64, 64, seed=3)] * 3
    assert psnr(video_roundtrip(frames, "h264", 45)[1], frames[1]) < psnr(video_roundtrip(frames, "h264", 25)[1], frames[1])


def test_unknown_degradation_names():
    from revamp.data.degrade import build_degradation

    with pytest.raises(ValueError, match="unknown video codec"):
        build_degradation({"video": {"codecs": {"vp9": [30, 40]}}})
    with pytest.raises(ValueError, match="unknown degradation"):
        build_degradation({"noise": {}})


def test_codec_weights_set_the_odds_of_each_codec(monkeypatch):
    from revamp.data import degrade

    drawn = []

    def roundtrip(frames, codec, q, steps, preset):  # no encoding: only which codec was drawn matters
        drawn.append(codec)
        steps.extend([1.0] * len(frames))
        return frames

    monkeypatch.setattr(degrade, "video_roundtrip", roundtrip)
    img = natural_image(32, 32, seed=5)
    cfg = {"codecs": {"h264": [30, 30], "h265": [30, 30], "mpeg2": [5, 5]}}
    for weights, share in [({}, 1 / 3), ({"h265": 2}, 1 / 2), ({"h265": 0}, 0.0), ({"h264": 0, "mpeg2": 0}, 1.0)]:
        drawn.clear()
        deg = degrade.build_video_degradation({**cfg, "weights": weights})
        rng = np.random.default_rng(0)
        for _ in range(600):
            deg.sample(img, rng)
        assert abs(drawn.count("h265") / len(drawn) - share) < 0.06, weights
    for bad in [{"vp9": 1}, {"h264": -1}, {"h264": 0, "h265": 0, "mpeg2": 0}]:
        with pytest.raises(ValueError, match="weights"):
            degrade.build_video_degradation({**cfg, "weights": bad})


def test_real_clips_give_frames_of_the_clip_through_a_codec():
    from revamp.codec import condition_value, h26x_step
    from revamp.data.degrade import VideoDegradation
    from revamp.metrics import psnr

    clip = np.stack([natural_image(80, 100 + 6, seed=4)[:, i : i + 100] for i in range(6)])  # a pan, 6 frames
    images = [natural_image(100, 120, seed=s) for s in range(2)]
    video = VideoDegradation(codecs={"h264": (30, 30), "h265": (30, 30)}, blind_codecs=("h265",))
    ds = PairDataset(images, 64, JpegDegradation(), seed=3, condition=True, clips=[clip, clip[:3]], clip_prob=0.5, clip_degradation=video)
    assert len(ds.clips) == 1 and ds.skipped_clips == 1  # a clip shorter than the codec's window is left out
    # A clip sample's target is a 64x64 window of one frame (rotated or flipped alike).
    windows = [np.rot90(f[r : r + 64, c : c + 64], k) for f in clip for r in range(17) for c in range(43) for k in range(4)]
    from_clips = told = 0
    for i in range(24):
        x, y = ds[i]
        assert torch.equal(x, ds[i][0])  # the index determines the sample
        target = (y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        if any(np.array_equal(target, w) or np.array_equal(target, w[:, ::-1]) for w in windows):
            from_clips += 1
            degraded = (x[:3].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            assert 20 < psnr(degraded, target) < 50
            if x[4].any():  # H.264 is told its frame's step (I, P, reference B or B frame); H.265 is in blind_codecs here
                told += 1
                assert any(torch.allclose(x[3], torch.tensor(float(condition_value(h26x_step(qp))))) for qp in (27, 30, 31, 32))
    assert 5 <= from_clips <= 19 and told >= 1


def test_multi_frame_samples_carry_the_neighbours_quality_planes():
    """With neighbour_quality a video sample carries, after the aligned neighbours' RGB, one plane
    per neighbour from the decoded frames' steps (known for a blind codec too); a JPEG still's are
    neutral; the input has the model's count of planes."""
    from revamp.data.degrade import MixedDegradation, VideoDegradation
    from revamp.models.contract import NEUTRAL_QUALITY

    images = [natural_image(100, 120, seed=s) for s in range(2)]
    video = VideoDegradation(codecs={"h264": (37, 37), "h265": (37, 37)}, blind_codecs=("h265",), neighbours=1, neighbour_quality=True)
    ds = PairDataset(images, 64, MixedDegradation([(0.7, video), (0.3, JpegDegradation())]), seed=2, condition=True, neighbours=1,
                     neighbour_quality=True)
    kinds = set()
    for i in range(16):
        x, _ = ds[i]
        assert x.shape == (13, 64, 64)
        quality = x[11:]
        if torch.equal(x[5:8], x[:3]) and torch.equal(x[8:11], x[:3]):  # a still: itself, of neutral quality
            assert (quality == NEUTRAL_QUALITY).all()
            kinds.add("still")
        elif (quality - NEUTRAL_QUALITY).abs().amax() > 0.05:  # a neighbour coded at another step than the frame
            kinds.add("finer" if quality.mean() > NEUTRAL_QUALITY else "coarser")
    assert kinds >= {"still", "finer", "coarser"}, kinds


def test_validation_set_measures_video_items(image_folder):
    from revamp.train.common import TrainingData

    cfg = tiny_config(image_folder, val_video=[["h264", 37], ["h265", 37]], degradation={"jpeg": {"quality": [10, 10]}})
    data = TrainingData(cfg)
    keys = [item[0] for item in data.val.items]
    assert keys.count("q20") == keys.count("h264_37") == keys.count("h265_37") == 2
    # Each video item is told its frame's step, as `revamp video` reads it (HEVC: the slice QP).
    from revamp.codec import h26x_step

    steps = [step for key, _, _, step in data.val.items if key.startswith("h26")]
    assert len(steps) == 4 and all(np.isclose(steps, h26x_step(np.array([34, 37, 38, 39]))[:, None], rtol=1e-5).any(axis=0))
    trainer = GeneratorTrainer(cfg, image_folder.parent / "run", device=torch.device("cpu"), quiet=True, data=data)
    result = data.val.evaluate(trainer.model, torch.device("cpu"), False)
    assert {"gain_q20", "gain_h264_37", "gain_h265_37", "gain_mean", "lpips"} <= set(result)
    assert abs(result["gain_h264_37"]) < 1e-6  # the untrained generator is the identity


def test_campaign_resumes_after_kill_9_and_warm_restarts_the_next_leg(image_folder, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    config = tmp_path / "tiny_campaign.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"encoder": "mobilenetv3_small_100", "width": 8},
        "data": {"train": [str(image_folder)], "val_count": 2, "workers": 0},
        "phases": [{"name": "patches", "patch": 64, "batch": 4, "steps": 40}],
        "optim": {"warmup": 2}, "checkpoint_every": 5, "val_every": 20, "val_qualities": [20], "bf16": False, "log_every": 1,
    }))
    env = dict(os.environ, REVAMP_CAMPAIGNS=str(tmp_path / "campaigns"), PYTHON=sys.executable)
    script = str(repo / "scripts" / "campaign.sh")
    root = tmp_path / "campaigns" / "tiny_campaign"
    start = subprocess.run([script, str(config)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert start.returncode == 0 and "running in the background" in start.stderr
    pid = int((root / "pid").read_text())
    deadline = time.monotonic() + 300
    while not (root / "leg1" / "generator" / "checkpoint.json").is_file():
        assert time.monotonic() < deadline, (root / "campaign.log").read_text()[-2000:]
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)  # no chance to save anything
    stopped_at = json.loads((root / "leg1" / "generator" / "checkpoint.json").read_text())["state"]["step"]
    assert 5 <= stopped_at < 40

    again = subprocess.run([script, str(config)], env=dict(env, FOREGROUND="1", LEGS="1"), capture_output=True, text=True, timeout=300,
                           check=False)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "resuming leg1" in again.stdout
    state = json.loads((root / "leg1" / "generator" / "checkpoint.json").read_text())["state"]
    assert state["step"] == 40 and (root / "leg1" / "generator" / "final.safetensors").is_file()

    nxt = subprocess.run([script, str(config)], env=dict(env, FOREGROUND="1", LEGS="1"), capture_output=True, text=True, timeout=300,
                         check=False)
    assert nxt.returncode == 0, nxt.stdout[-2000:] + nxt.stderr[-2000:]
    assert "starting leg2" in nxt.stdout
    assert (root / "leg2" / "init").read_text().strip() == str(root / "leg1" / "generator" / "best.safetensors")
    assert json.loads((root / "leg2" / "generator" / "config.json").read_text())["init"] == str(root / "leg1" / "generator" / "best.safetensors")
    # A warm-restarted leg validates its starting weights first: its best is never below where it began.
    assert (root / "leg2" / "generator" / "val.csv").read_text().splitlines()[1].startswith("0,")


def test_gpu_script_dry_run_on_the_cpu(tmp_path):
    """scripts/train_on_gpu.sh with a tiny config: its jobs start, are cut by the time limit, and
    every model file and the logs come back to OUT."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    for name in ("bsds500", "t91", "wiki49"):
        write_images(data / name, 3, 160, 192)
    clip = tmp_path / "clips" / "pan"
    clip.mkdir(parents=True)
    big = natural_image(160, 220, seed=9)
    from PIL import Image

    for i in range(6):
        Image.fromarray(big[:, i * 4 : i * 4 + 192]).save(clip / f"f{i:03d}.png")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"encoder": "mobilenetv3_small_100", "width": 8, "decoder": "light", "cond_channels": 2},
        "data": {"train": ["unused"], "val_count": 2, "clips": ["unused"], "clip_prob": 0.5},
        "degradation": {"jpeg": {"quality": [10, 40]}, "video": {"prob": 0.3, "codecs": {"h264": [30, 40]}}},
        "phases": [{"name": "patches", "patch": 64, "batch": 4, "steps": 10000}],
        "checkpoint_every": 5, "val_every": 10, "val_qualities": [20], "val_video": [["h264", 37]], "bf16": False,
    }))
    env = dict(os.environ, PYTHON=sys.executable, RUN_SECONDS="25", STAGE="generator", WORKERS="1", SETS="optim.warmup=3 seed=5 'loss={charbonnier: 1.0}'", CLIPS=str(tmp_path / "clips"),
               RUNS=str(tmp_path / "runs"))
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(repo / "scripts" / "train_on_gpu.sh"), str(out), str(data), f"tiny={config}"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (out / "tiny-generator-last.safetensors").is_file() and (out / "tiny-generator-best.safetensors").is_file()
    assert (out / "logs.tar.gz").is_file()
    run = json.loads((tmp_path / "runs" / "tiny" / "generator" / "config.json").read_text())
    assert run["seed"] == 5 and run["loss"] == {"charbonnier": 1.0}  # SETS, a quoted item with a space included
    from safetensors import safe_open

    with safe_open(str(out / "tiny-generator-best.safetensors"), "pt") as f:  # fp16: small enough to bring back
        assert {f.get_slice(k).get_dtype() for k in f.keys()} & {"F16", "F32"} == {"F16"}


def test_gpu_stage_fits_each_call_and_unpacks(tmp_path):
    """scripts/gpu_stage.py on a clone: pack hides the model files the run does not need, stages
    the wheels and as many images as fit the per-call budget, and unpack brings the tree back."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--shared", str(repo), str(clone)], check=True)
    shared = tmp_path / "shared"
    for name in ("bsds500", "t91", "wiki49"):
        write_images(shared / "train" / name, 3, 400, 400)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "fake-1.0-py3-none-any.whl").write_bytes(b"0" * 100_000)

    def stage(*args):
        return subprocess.run([sys.executable, str(clone / "scripts" / "gpu_stage.py"), *args], capture_output=True, text=True, check=False)

    tracked = int(subprocess.run(["git", "-C", str(clone), "ls-files"], capture_output=True, text=True, check=True).stdout.count("\n"))
    weights = clone / "src" / "revamp" / "weights"
    kept = (weights / "default.safetensors").stat().st_size + (weights / "lpips_alex.safetensors").stat().st_size
    images = sorted(p.stat().st_size for p in shared.rglob("*.png"))
    budget = (kept + 2_000_000 + sum(images[:4]) + 1000) / 2**20  # the code and some images fit, not all
    proc = stage("pack", "default", "--wheels", str(wheels), "--shared", str(shared), "--budget-mib", f"{budget:.3f}")
    assert proc.returncode == 0, proc.stderr
    assert (weights / "default.safetensors").is_file() and (weights / "lpips_alex.safetensors").is_file()
    assert not (weights / "video.safetensors").exists() and not (clone / "ablations").exists() and not (clone / "docs").exists()
    assert (clone / ".gpu" / "whl" / "fake-1.0-py3-none-any.whl").is_file()
    staged = list((clone / ".gpu" / "data" / "images").rglob("*.png"))
    assert 0 < len(staged) < len(images) and "images left out" in proc.stdout
    assert subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True, text=True, check=True).stdout == ""
    proc = stage("pack", "default", "--wheels", str(wheels), "--shared", str(shared), "--budget-mib", f"{kept / 2**20:.3f}")
    assert proc.returncode != 0 and "over" in proc.stderr and "Traceback" not in proc.stderr
    proc = stage("unpack", "--clean")
    assert proc.returncode == 0 and not (clone / ".gpu").exists()
    on_disk = [p for p in clone.rglob("*") if p.is_file() and ".git" not in p.relative_to(clone).parts]
    assert len(on_disk) == tracked and (weights / "video.safetensors").is_file()
