import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import natural_image
from PIL import Image

from revamp.cli import main


def make_jpeg(path, h=64, w=96, seed=0, quality=15):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(natural_image(h, w, seed)).save(path, quality=quality)


def test_folder_structure_is_kept_and_summary(tmp_path, capsys):
    src = tmp_path / "in"
    make_jpeg(src / "a.jpg")
    make_jpeg(src / "trip" / "day1" / "b.jpeg", seed=1)
    (src / "notes.txt").write_text("not an image; ignored inside folders")
    single = tmp_path / "c.jpg"
    make_jpeg(single, seed=2)
    rc = main(["image", str(src), str(single), "-o", str(tmp_path / "out"), "-q"])
    assert rc == 0
    assert (tmp_path / "out" / "a.png").is_file()
    assert (tmp_path / "out" / "trip" / "day1" / "b.png").is_file()
    assert (tmp_path / "out" / "c.png").is_file()
    assert "3 restored" in capsys.readouterr().err


def test_bad_inputs_fail_alone_and_exit_2(tmp_path, capsys):
    src = tmp_path / "in"
    make_jpeg(src / "good.jpg")
    (src / "empty.jpg").write_bytes(b"")
    (src / "fake.png").write_text("hello")
    buf = io.BytesIO()
    Image.fromarray(natural_image(64, 64)).save(buf, "JPEG")
    (src / "truncated.jpg").write_bytes(buf.getvalue()[:300])
    unsupported = tmp_path / "drawing.svg"
    unsupported.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    rc = main(["image", str(src), str(unsupported), str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert (tmp_path / "out" / "good.png").is_file()
    for name in ("empty.jpg", "fake.png", "truncated.jpg", "drawing.svg", "missing.jpg"):
        assert f"{name}" in err
        assert not (tmp_path / "out" / name).with_suffix(".png").exists()
    assert "1 restored" in err and "5 failed" in err
    assert "Traceback" not in err


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, capsys):
    make_jpeg(tmp_path / "a.jpg")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"user's file")
    assert main(["image", str(tmp_path / "a.jpg"), "-o", str(out), "-q"]) == 0
    assert (out / "a.png").read_bytes() == b"user's file"
    assert "skipped" in capsys.readouterr().err
    assert main(["image", str(tmp_path / "a.jpg"), "-o", str(out), "-q", "--overwrite"]) == 0
    with Image.open(out / "a.png") as im:
        assert im.size == (96, 64)


@pytest.mark.parametrize("fmt,suffix", [("jpg", ".jpg"), ("webp", ".webp"), ("tiff", ".tif")])
def test_output_formats(tmp_path, fmt, suffix):
    make_jpeg(tmp_path / "a.jpg")
    assert main(["image", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "--format", fmt, "-q"]) == 0
    with Image.open((tmp_path / "o" / "a").with_suffix(suffix)) as im:
        assert im.size == (96, 64)


def test_restoring_improves_a_jpeg(tmp_path):
    from revamp.metrics import psnr

    clean = natural_image(128, 160, seed=5)
    Image.fromarray(clean).save(tmp_path / "a.jpg", quality=15)
    assert main(["image", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "-q", "--tile", "64", "--tile-overlap", "32"]) == 0
    restored = np.asarray(Image.open(tmp_path / "o" / "a.png"))
    compressed = np.asarray(Image.open(tmp_path / "a.jpg"))
    assert psnr(restored, clean) > psnr(compressed, clean)


def test_model_errors_are_one_line(tmp_path):
    make_jpeg(tmp_path / "a.jpg")
    bad = tmp_path / "model.pth"
    bad.write_bytes(b"pickle")
    proc = subprocess.run([sys.executable, "-m", "revamp.cli", "image", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "--model", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "only .safetensors" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "revamp.cli", "image", str(tmp_path / "a.jpg"), "-o", str(tmp_path / "o"), "--model", "nonexistent"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown model" in proc.stderr and "Traceback" not in proc.stderr


def test_models_lists_the_default(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "x1" in out and "LIVE1" in out


def test_models_quality_is_what_the_evaluations_measured():
    """`revamp models`' quality column is measured.json, which scripts/record_quality.py writes from
    the committed eval summaries: regenerating it from them gives the shipped file back."""
    import json

    from revamp.models.registry import SHIPPED, measured_quality, weights_dir

    repo = Path(__file__).resolve().parents[1]
    shipped = json.loads((weights_dir() / "measured.json").read_text())
    assert set(shipped) == set(SHIPPED) and all(measured_quality(name) == shipped[name]["quality"] for name in SHIPPED)
    out = subprocess.run([sys.executable, "-c", "import json, sys; sys.path.insert(0, 'scripts'); import record_quality as r; "
                          "print(json.dumps(r.measured()))"], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == shipped


def test_demo_writes_page_and_images(tmp_path):
    from pathlib import Path

    samples = Path(__file__).resolve().parents[1] / "samples"
    assert main(["demo", "--input", str(samples), "-o", str(tmp_path / "demo"), "-q"]) == 0
    page = (tmp_path / "demo" / "index.html").read_text()
    afters = sorted((tmp_path / "demo" / "after").glob("*.png"))
    assert len(afters) == len(list(samples.glob("*.jpg"))) >= 3
    for a in afters:
        assert f"after/{a.name}" in page
        assert (tmp_path / "demo" / "before").is_dir()
    assert 'type="range"' in page


def test_torchrun_shards_a_folder_across_two_ranks(tmp_path):
    """Each file restored exactly once, and the outputs equal a single-process run's."""
    import os
    from pathlib import Path

    from conftest import write_images

    src = write_images(tmp_path / "in", 5, 48, 64)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "revamp.cli", "image", str(src),
                           "-o", str(tmp_path / "sharded"), "-q"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shard 0/2: 3 restored" in proc.stderr and "shard 1/2: 2 restored" in proc.stderr
    assert main(["image", str(src), "-o", str(tmp_path / "single"), "-q"]) == 0
    for i in range(5):
        a, b = (np.asarray(Image.open(tmp_path / d / f"{i}.png")) for d in ("sharded", "single"))
        assert np.array_equal(a, b)


def test_video_restores_with_the_video_model_and_images_with_default():
    import dataclasses
    import json

    from revamp.cli import build_parser
    from revamp.models import UNetConfig
    from revamp.models.files import read_metadata
    from revamp.models.registry import VIDEO_MODEL, resolve_model

    parser = build_parser()
    assert parser.parse_args(["video", "in.mpg", "-o", "out.mp4"]).model == VIDEO_MODEL == "video"
    assert parser.parse_args(["image", "in.jpg", "-o", "out"]).model == "default"
    meta = read_metadata(resolve_model(VIDEO_MODEL))
    default = read_metadata(resolve_model("default"))
    # default's network with residual blocks at full resolution, trained further from it
    video_net = UNetConfig(**json.loads(meta["config"]))
    assert meta["name"] == "video" and video_net.head_blocks > 0
    assert dataclasses.replace(video_net, head_blocks=0) == UNetConfig(**json.loads(default["config"]))


def test_video_quality_is_full_psnr_made_multi_frame_and_codec_aware():
    import dataclasses
    import json

    from revamp.inference.restorer import Restorer
    from revamp.models import UNetConfig
    from revamp.models.files import read_metadata
    from revamp.models.registry import resolve_model

    net = UNetConfig(**json.loads(read_metadata(resolve_model("video-quality"))["config"]))
    assert net.neighbours == 1 and net.cond_channels == 2
    assert dataclasses.replace(net, neighbours=0, cond_channels=0) == UNetConfig(**json.loads(read_metadata(resolve_model("full-psnr"))["config"]))
    restorer = Restorer("video-quality", device="cpu")  # given frames as it learnt them: converted exactly, H.265 blind
    assert restorer.neighbours == 1 and restorer.codec_aware and restorer.exact_video_rgb and restorer.blind_codecs == {"h265"}
