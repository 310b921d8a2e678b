import json
import shutil

import numpy as np
import pytest
from conftest import natural_image, write_images
from PIL import Image

from revamp.cli import main
from revamp.defaults import STABILIZE


@pytest.fixture()
def clean_folder(tmp_path):
    folder = write_images(tmp_path / "clean", 2, 96, 128)
    Image.fromarray(natural_image(96, 128, seed=9)[..., 0], "L").save(folder / "gray.png")
    return folder


def test_eval_writes_tables_and_the_model_beats_jpeg(clean_folder, tmp_path):
    out = tmp_path / "res"
    rc = main(["eval", "--model", "default", "--data", str(clean_folder), "--degrade", "jpeg:20", "--metrics", "psnr,ssim,psnr-b,lpips,niqe",
               "--out", str(out), "-q"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["method"]: r for r in summary["results"]}
    assert rows["default"]["psnr"] > rows["JPEG (input)"]["psnr"]
    assert rows["default"]["psnr-b"] > rows["JPEG (input)"]["psnr-b"]
    assert rows["Target (originals)"]["psnr"] is None and rows["Target (originals)"]["niqe"] > 0
    methods = 4 if shutil.which("ffmpeg") else 3
    assert (out / "per_image.csv").read_text().count("\n") == 1 + 3 * methods
    assert "| jpeg:20 | default |" in (out / "summary.md").read_text()


def test_eval_super_resolution_rows_and_scale_check(clean_folder, tmp_path):

    from revamp.models import UNetConfig, UNetGenerator
    from revamp.models.files import save_model

    path = tmp_path / "x2.safetensors"
    save_model(UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, scale=2)), path, name="x2", task="sr", recipe={})
    out = tmp_path / "res"
    assert main(["eval", "--model", str(path), "--data", str(clean_folder), "--degrade", "jpeg:50", "--scale", "2", "--metrics", "psnr",
                 "--out", str(out), "-q"]) == 0
    rows = {r["method"]: r for r in json.loads((out / "summary.json").read_text())["results"]}
    # An untrained x2 model is bicubic plus a zero correction: the same numbers as the bicubic row.
    assert rows[str(path)]["psnr"] == pytest.approx(rows["bicubic x2 of the JPEG"]["psnr"], abs=0.05)
    assert main(["eval", "--model", "default", "--data", str(clean_folder), "--degrade", "jpeg:50", "--scale", "2", "--out", str(out), "-q"]) == 1


def test_eval_bad_degradation(clean_folder, tmp_path):
    assert main(["eval", "--model", "default", "--data", str(clean_folder), "--degrade", "blur:3", "--out", str(tmp_path), "-q"]) == 1


def test_spp_baseline_reproduces_the_measured_anchor(tmp_path):
    """../shared/ANCHORS.md: spp on LIVE1 gray q10, qp tuned, gives 28.57 dB on this machine kind."""
    from conftest import require, shared_path

    from revamp.evaluation.images import evaluate

    require(bool(shutil.which("ffmpeg")), "the system ffmpeg (Debian package ffmpeg)")
    data = shared_path("data", "eval", "live1_gray")
    summary = evaluate({}, data, [("jpeg", 10)], ["psnr"], "y", 0, tmp_path, quiet=True)
    rows = {r["method"]: r for r in summary["results"]}
    assert rows["FFmpeg spp"]["psnr"] == pytest.approx(28.57, abs=0.03)
    assert rows["JPEG (input)"]["psnr"] == pytest.approx(27.77, abs=0.02)


def test_eval_video_codec_degradations_and_html_report(clean_folder, tmp_path):
    out = tmp_path / "res"
    assert main(["eval", "--model", "default", "--data", str(clean_folder), "--degrade", "h264:qp37", "--degrade", "mpeg2:10",
                 "--metrics", "psnr", "--baseline", "none", "--html", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    methods = [(r["degradation"], r["method"]) for r in summary["results"]]
    assert methods == [("h264:37", "H264 (input)"), ("h264:37", "default"), ("mpeg2:10", "MPEG2 (input)"), ("mpeg2:10", "default")]
    page = (out / "index.html").read_text()
    assert page.count("<tr><td>") == 3 * 2  # one row per image and degradation
    crops = sorted((out / "crops").glob("*.png"))
    assert len(crops) == 3 * 2 * 3  # reference, input, model
    for crop in crops:
        assert f"crops/{crop.name}" in page


def test_mismatch_degradations_tell_the_lighter_compression():
    import numpy as np

    from revamp.codec import condition_value, ijg_table, jpeg_step
    from revamp.data.degrade import compress
    from revamp.evaluation.images import file_hint, parse_degradations
    from revamp.metrics import psnr

    img = natural_image(64, 96, seed=3)
    specs = parse_degradations(["jpeg:15", "jpeg-resaved:15", "h264:qp40", "h264-reencoded:40"])
    out = {kind: compress(img, kind, q) for kind, q in specs}
    # saved again lightly: the damage of the first compression stays (and a little is added)
    assert psnr(out["jpeg-resaved"], img) < psnr(out["jpeg"], img) + 0.3
    assert psnr(out["h264-reencoded"], img) < psnr(out["h264"], img) + 0.3
    assert compress(img[..., 0], "jpeg-resaved", 15).shape == (64, 96)
    told = file_hint("jpeg-resaved", 15, 64, 96).planes(0, 64, 0, 96)[0]
    assert np.allclose(told, condition_value(jpeg_step(ijg_table(90))))  # the file only knows its last save
    assert file_hint("h264-reencoded", 40, 64, 96).planes(0, 8, 0, 8)[0].mean() < file_hint("h264", 40, 64, 96).planes(0, 8, 0, 8)[0].mean()


def test_eval_video_measures_the_decoded_y_planes_not_a_y_recomputed_from_rgb(tmp_path):
    """The compressed row is the file's own Y plane (as the video papers measure it); Y recomputed
    from an 8-bit RGB decode differs (clipped out-of-gamut colours, rounding), and a model's
    output is measured as `revamp video` writes it."""
    from videos import moving_frames

    from revamp.data.degrade import video_roundtrip
    from revamp.evaluation.video import evaluate_video, written_luma
    from revamp.metrics import psnr, rgb_to_y

    frames = moving_frames(4, 64, 96, seed=3)
    frames = [np.clip(f.astype(int) * 2 - 128, 0, 255).astype(np.uint8) for f in frames]  # saturated colours
    data = tmp_path / "clips" / "sat"
    data.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(data / f"{i:03d}.png")
    summary = evaluate_video({}, data.parent, [("h264", 37)], tmp_path / "res", max_frames=4, baseline="none", quiet=True)
    row = next(r for r in summary["rows"] if r["method"] == "compressed")
    luma: list = []
    rgb = video_roundtrip(frames, "h264", 37, luma=luma)
    planes = np.mean([psnr(y.astype(np.float64), rgb_to_y(f)) for y, f in zip(luma, frames)])
    from_rgb = np.mean([psnr(d, f, channel="y") for d, f in zip(rgb, frames)])
    assert row["psnr_y"] == pytest.approx(planes, abs=1e-9) and abs(planes - from_rgb) > 0.01
    written = next(r for r in summary["rows"] if r["method"] == "ffmpeg deblock")["psnr_y"]
    from revamp.evaluation.video import ffmpeg_deblock

    assert written == pytest.approx(np.mean([psnr(y.astype(np.float64), rgb_to_y(f)) for y, f in
                                             zip(written_luma(ffmpeg_deblock(rgb)), frames)]), abs=1e-9)


def test_eval_video_on_clips(tmp_path):
    """`revamp eval --video`: a folder of frame images and a video file, H.264 and MPEG-2, every row and metric."""
    from videos import make_video, moving_frames

    data = tmp_path / "clips"
    (data / "pan").mkdir(parents=True)
    for i, frame in enumerate(moving_frames(5, 64, 96, seed=2)):
        Image.fromarray(frame).save(data / "pan" / f"{i:03d}.png")
    make_video(data / "moving.mp4", n=5, codec="ffv1", audio=False, subtitles=False)
    out = tmp_path / "res"
    assert main(["eval", "--video", "--model", "default", "--data", str(data), "--degrade", "h264:37", "--degrade", "mpeg2:10",
                 "--max-frames", "4", "--baseline", "none", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {c["name"] for c in summary["clips"]} == {"pan", "moving"} and {c["frames"] for c in summary["clips"]} == {4}
    rows = {(r["degradation"], r["method"]): r for r in summary["rows"]}
    for degradation in ("h264 QP37", "mpeg2 q10"):
        assert rows[(degradation, "compressed")]["delta_psnr_y"] == 0
        for method in ("ffmpeg deblock", "default", f"default + stabiliser {STABILIZE:g}"):
            row = rows[(degradation, method)]
            assert all(np.isfinite(row[m]) for m in ("psnr_y", "ssim_y", "warp_error", "tof", "tlp")), row
    assert "| h264 QP37 | default |" in (out / "summary.md").read_text()
