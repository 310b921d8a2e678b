"""ONNX export, the inference backends and `revamp bench`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from revamp.cli import main
from revamp.metrics import psnr
from revamp.registry import resolve_model
from revamp.restorer import Restorer

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sintel_0016_q12.jpg"


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REVAMP_CACHE", str(tmp_path / "cache"))


def _real_crop(h=200, w=300) -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:h, :w]


def test_onnx_export_matches_torch_on_a_real_image(tmp_path):
    from revamp.export import describe, export_onnx, max_difference

    out = export_onnx(resolve_model("default"), tmp_path / "default.onnx")
    info = describe(out)
    assert info["opset"] >= 17
    assert json.loads(info["inputs"][0]) == ["batch", 3, "height", "width"]  # dynamic batch, height, width
    assert info["metadata"]["name"] == "default"
    assert max_difference(resolve_model("default"), out, _real_crop()) < 1e-3


def test_export_cli_writes_the_file_and_checks_it(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--model", "default", "-o", str(out), "--check", str(SAMPLE)]) == 0
    assert out.stat().st_size > 1_000_000 and "max |torch - onnxruntime|" in capsys.readouterr().err


def test_backends_agree_through_the_same_tiling(tmp_path):
    image = _real_crop(260, 340).astype(np.float32) / 255
    torch_out = Restorer("default", device="cpu", tile=128, tile_overlap=32).restore_rgb(image)
    ort_out = Restorer("default", device="cpu", tile=128, tile_overlap=32, backend="onnxruntime").restore_rgb(image)
    assert np.abs(torch_out - ort_out).max() < 1e-3
    bf16_out = Restorer("default", device="cpu", tile=128, tile_overlap=32, backend="torch-bf16").restore_rgb(image)
    to8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    assert psnr(to8(bf16_out), to8(torch_out)) > 40  # bf16 changes the output far less than the restoration does
    assert psnr(to8(bf16_out), to8(torch_out)) > psnr(to8(torch_out), to8(image)) + 5


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown backend"):
        Restorer("default", backend="tensorrt")


def test_bench_reports_every_configuration(tmp_path):
    out = tmp_path / "bench.json"
    code = main(["bench", "--encoders", "mobilenetv3_small_100,resnet34", "--sizes", "96x64", "--backends", "torch,onnxruntime",
                 "--width", "8", "--runs", "1", "--json", str(out), "-q"])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["machine"] and len(report["results"]) == 4
    row = report["results"][0]
    assert {"encoder", "backend", "size", "s_per_frame", "params_m", "gflops", "encoder_gflops", "peak_rss_mb"} <= set(row)
    assert row["s_per_frame"] > 0 and row["gflops"] > row["encoder_gflops"] > 0
    small, big = (next(r for r in report["results"] if r["encoder"] == e) for e in ("mobilenetv3_small_100", "resnet34"))
    assert big["params_m"] > 5 * small["params_m"]
