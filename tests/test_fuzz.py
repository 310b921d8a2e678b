"""Bad and odd inputs (tests/fuzz_corpus.py) through the real command line: each one ends in a
restoration or in one line naming the file, never a crash, a traceback or a half-written output,
and the rest of the batch is restored."""
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import require
from fuzz_corpus import bad_images, bad_videos
from PIL import Image

from revamp.cli import main


def _lines(err: str, kind: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"revamp: {kind}:")]


def test_bad_image_corpus(tmp_path, capsys):
    outcomes = bad_images(tmp_path / "in")
    assert len(outcomes) >= 50
    out = tmp_path / "out"
    rc = main(["image", str(tmp_path / "in"), "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err and "REVAMP_DEBUG" not in err, err[-3000:]
    errors, warnings = _lines(err, "error"), _lines(err, "warning")
    restored = {p.stem for p in out.iterdir()}
    for name, outcome in outcomes.items():
        said = [line for line in errors if line.startswith(f"revamp: error: {tmp_path / 'in' / name}:")]
        stem = Path(name).stem
        if outcome == "error":
            assert len(said) == 1 and stem not in restored, (name, said)
        elif outcome in ("ok", "warn"):
            assert not said and stem in restored, (name, said)
            warned = any(line.startswith(f"revamp: warning: {tmp_path / 'in' / name}:") for line in warnings)
            assert warned == (outcome == "warn"), (name, warnings)
        else:  # damaged in the data: restored or refused, one way only
            assert (len(said) == 1) != (stem in restored), (name, said)
    for path in out.iterdir():  # nothing half-written: every file is a whole picture
        assert path.suffix == ".png" and not path.name.startswith("."), path
        with Image.open(path) as im:
            im.load()
    total = len(outcomes)
    assert f"{len(restored)} restored, {total - len(restored)} failed" in err


def test_bad_video_corpus(tmp_path, capsys):
    ffmpeg = shutil.which("ffmpeg")
    require(bool(ffmpeg), "the system ffmpeg (Debian package ffmpeg)")
    outcomes = bad_videos(tmp_path / "in", ffmpeg)
    assert len(outcomes) >= 15
    for name, outcome in outcomes.items():
        dst = tmp_path / "out" / f"{name}.mkv"
        rc = main(["video", str(tmp_path / "in" / name), "-o", str(dst), "-q", "--segment-frames", "5"])
        err = capsys.readouterr().err
        assert "Traceback" not in err and "REVAMP_DEBUG" not in err, (name, err)
        errors, warnings = _lines(err, "error"), _lines(err, "warning")
        if outcome == "error":
            assert rc == 1 and len(errors) == 1 and not dst.exists(), (name, err)
        elif outcome == "any":
            assert (rc == 1) != dst.exists(), (name, err)
        else:
            assert rc in (0, 2) and dst.exists() and not errors, (name, err)
            assert bool(warnings) == (outcome == "warn"), (name, err)
            with av.open(str(dst)) as c:
                assert sum(1 for _ in c.decode(video=0)) >= 1
    leftovers = [p.name for p in (tmp_path / "out").iterdir()] if (tmp_path / "out").exists() else []
    assert all(n.endswith(".mkv") and not n.startswith(".") for n in leftovers), leftovers  # no work folders, no parts


def test_output_that_is_the_input_is_refused_even_with_overwrite(tmp_path, capsys):
    from videos import make_video

    src = make_video(tmp_path / "clip.mp4", n=4, audio=False, subtitles=False)
    before = src.read_bytes()
    assert main(["video", str(src), "-o", str(src), "--overwrite", "-q"]) == 1
    assert "is the input" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_interlaced_h264_restores_with_the_default_model(tmp_path, capsys):
    """MBAFF/field-coded H.264 exports more quantiser blocks than the frame has macroblocks."""
    ffmpeg = shutil.which("ffmpeg")
    require(bool(ffmpeg), "the system ffmpeg (Debian package ffmpeg)")
    import subprocess

    src = tmp_path / "i240.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-frames:v", "6", "-vf", "tinterlace=4",
                    "-c:v", "libx264", "-flags", "+ilme+ildct", str(src)], check=True)
    for extra in ([], ["--deinterlace"]):
        dst = tmp_path / f"out{len(extra)}.mp4"
        assert main(["video", str(src), "-o", str(dst), "-q", *extra]) == 0, capsys.readouterr().err
        assert not list(tmp_path.glob(".*revamp-work"))


@pytest.mark.parametrize("args", [["--tile", "0"], ["--tile", "-5"], ["--tile", "7"], ["--tile-overlap", "-64"], ["--stabilize", "5"],
                                  ["--crf", "-5"], ["--segment-frames", "0"], ["--segment-frames", "-5"], ["--strength", "3"],
                                  ["--tile", "64", "--tile-overlap", "48"]])
def test_bad_video_options_are_usage_errors_before_any_work(tmp_path, capsys, args):
    src = tmp_path / "missing.mp4"  # never opened: the options are refused first
    with pytest.raises(SystemExit) as exit_:
        main(["video", str(src), "-o", str(tmp_path / "out.mp4"), *args])
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_pictures_over_the_pixel_limit_are_refused_before_decoding(tmp_path, capsys):
    bad_images(tmp_path / "in")
    keep = {"bomb_784mp_png.png", "good_png.png"}
    for p in (tmp_path / "in").iterdir():
        if p.name not in keep:
            p.unlink()
    assert main(["image", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "784 megapixels, over the limit of 200 (--max-pixels)" in capsys.readouterr().err
    # The limit is the user's: 0.001 MP refuses the 64x48 picture too.
    assert main(["image", str(tmp_path / "in" / "good_png.png"), "-o", str(tmp_path / "o2"), "-q", "--max-pixels", "0.001"]) == 2
    assert "over the limit of 0.001" in capsys.readouterr().err


def test_model_file_with_an_absurd_width_is_refused_before_building(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from revamp.models.files import ModelFileError, load_model, read_metadata
    from revamp.models.registry import resolve_model

    src = resolve_model("default")
    meta = read_metadata(src)
    config = json.loads(meta["config"])
    config["width"] = 10**6
    bad = tmp_path / "wide.safetensors"
    save_file(load_file(str(src)), str(bad), metadata=dict(meta, config=json.dumps(config)))
    with pytest.raises(ModelFileError, match="width must be an integer from 8 to 512"):
        load_model(bad)


def test_eval_skips_a_corrupt_reference_and_says_so(tmp_path, capsys):
    from conftest import write_images

    data = write_images(tmp_path / "refs", 2, 64, 64)
    (data / "broken.png").write_bytes((data / "0.png").read_bytes()[:100])
    out = tmp_path / "res"
    assert main(["eval", "--model", "default", "--data", str(data), "--degrade", "jpeg:20", "--metrics", "psnr", "--baseline", "none",
                 "--out", str(out), "-q"]) == 0
    import json

    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 2
    assert any("Skipped broken.png" in n for n in summary["notes"])


def test_non_utf8_name_16bit_png_and_damaged_16bit_tiff(tmp_path):
    from revamp.imageio import ImageReadError, read_image

    bad_images(tmp_path)
    name = next(p for p in tmp_path.iterdir() if p.name.startswith("archive_"))
    pic = read_image(name)
    assert pic.bits == 16 and pic.rgb.shape == (48, 64, 3)
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "tiff16_truncated_tif.tif")
    assert read_image(tmp_path / "no_eoi_jpg.jpg").size == (64, 48)
    assert "only the first of its 3 frames" in read_image(tmp_path / "animated_gif.gif").warnings[0]
    assert np.isfinite(pic.rgb).all()
    assert os.fsencode(name.name).startswith(b"archive_\xe9")


def test_an_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, capsys):
    from conftest import write_images

    folder = write_images(tmp_path / "scans", 2, 48, 64)
    for _ in range(2):  # the second run must not find the first run's outputs as new inputs
        assert main(["image", str(folder), "-o", str(folder / "restored"), "-q"]) == 0
    err = capsys.readouterr().err
    assert sorted(p.name for p in (folder / "restored").iterdir()) == ["0.png", "1.png"]
    assert "restored/restored" not in err
