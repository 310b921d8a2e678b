import numpy as np
import pytest
import torch

from revamp.data.degrade import JpegDegradation, SRDegradation, double_jpeg, jpeg
from revamp.data.pairs import PairDataset
from revamp.train.config import load_config
from revamp.train.generator import GeneratorTrainer

from conftest import natural_image, write_images


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


def test_config_rejects_unknown_keys(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(bad)


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
