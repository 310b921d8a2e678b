"""ONNX export, the inference backends and `revamp bench`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from revamp.cli import main
from revamp.inference.restorer import Restorer
from revamp.metrics import psnr
from revamp.models.registry import resolve_model

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sintel_0016_q12.jpg"


@pytest.fixture(autouse=True)
def onnx_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REVAMP_CACHE", str(tmp_path / "cache"))


def _real_crop(h=200, w=300) -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:h, :w]


def test_onnx_export_matches_torch_on_a_real_image(tmp_path):
    from revamp.inference.export import describe, export_onnx, max_difference

    out = export_onnx(resolve_model("default"), tmp_path / "default.onnx")
    info = describe(out)
    assert info["opset"] >= 17
    # dynamic batch, height, width; RGB plus the default model's two quantiser planes (revamp.codec)
    assert json.loads(info["inputs"][0]) == ["batch", 5, "height", "width"]
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
    assert report["machine"] and len(report["results"]) == 8  # 2 encoders x 2 decoders x 2 backends
    row = report["results"][0]
    assert {"encoder", "decoder", "backend", "size", "s_per_frame", "params_m", "gflops", "encoder_gflops", "peak_rss_mb"} <= set(row)
    assert row["s_per_frame"] > 0 and row["gflops"] > row["encoder_gflops"] > 0
    small, big = (next(r for r in report["results"] if r["encoder"] == e) for e in ("mobilenetv3_small_100", "resnet34"))
    assert big["params_m"] > 5 * small["params_m"]
    full, light = (next(r for r in report["results"] if r["decoder"] == d) for d in ("full", "light"))
    assert light["gflops"] < full["gflops"] and light["encoder_gflops"] == full["encoder_gflops"]


def _codec_aware_model(path: Path) -> Path:
    """A light-decoder codec-aware model whose planes matter (its zero-initialised layers perturbed)."""
    import torch

    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=16, decoder="light", cond_channels=2))
    with torch.no_grad():
        model.to_rgb.weight.normal_(0, 0.05)
        model.full_res[0].weight.normal_(0, 0.2)
    save_model(model, path, name="aware", task="test", recipe={})
    return path


def test_codec_aware_model_exports_and_backends_agree(tmp_path):
    from revamp.codec import CodecHint
    from revamp.inference.export import describe, export_onnx, max_difference

    model = _codec_aware_model(tmp_path / "aware.safetensors")
    out = export_onnx(model, tmp_path / "aware.onnx")
    assert json.loads(describe(out)["inputs"][0]) == ["batch", 5, "height", "width"]
    assert max_difference(model, out, _real_crop()) < 1e-3
    image = _real_crop(200, 260).astype(np.float32) / 255
    hint = CodecHint.constant(40.0, 200, 260, "test")
    torch_out = Restorer(str(model), device="cpu", tile=128, tile_overlap=32).restore_rgb(image, hint=hint)
    ort_out = Restorer(str(model), device="cpu", tile=128, tile_overlap=32, backend="onnxruntime").restore_rgb(image, hint=hint)
    assert np.abs(torch_out - ort_out).max() < 1e-3


def test_strength_from_the_input_to_the_model_to_smoother(tmp_path):
    """0 gives the input back, 0.5 half the model's correction, 1 the model, above 1 smoother (less
    high-frequency energy at every step); blind models and codec-aware ones alike."""
    from scipy.ndimage import laplace

    from revamp.codec import CodecHint

    model = str(_codec_aware_model(tmp_path / "aware.safetensors"))
    image = _real_crop(96, 128).astype(np.float32) / 255
    hint = CodecHint.constant(40.0, 96, 128, "test")
    for name in (model, "full-psnr"):
        outs = {s: Restorer(name, device="cpu", strength=s, tile=64, tile_overlap=32).restore_rgb(image.copy(), hint=hint)
                for s in (0.0, 0.5, 1.0, 1.5, 2.0)}
        assert np.abs(outs[0.0] - image).max() < 1e-6
        np.testing.assert_allclose(outs[0.5], (image + outs[1.0]) / 2, atol=1e-3)  # two runs of the network
        energy = [float(np.mean(laplace(outs[s].mean(axis=2)) ** 2)) for s in (1.0, 1.5, 2.0)]
        assert energy[0] > energy[1] > energy[2], energy
    with pytest.raises(ValueError, match="strength"):
        Restorer(model, strength=2.5)


def test_codec_aware_image_command_reads_the_jpeg_tables(tmp_path, monkeypatch):
    import revamp.inference.batch

    seen = []
    real = revamp.inference.batch.hint_for_image
    monkeypatch.setattr(revamp.inference.batch, "hint_for_image", lambda path, rgb: seen.append(real(path, rgb)) or seen[-1])
    model = _codec_aware_model(tmp_path / "aware.safetensors")
    assert main(["image", str(SAMPLE), "-o", str(tmp_path / "out"), "--model", str(model), "--strength", "1.5", "-q"]) == 0
    assert (tmp_path / "out" / (SAMPLE.stem + ".png")).is_file()
    assert len(seen) == 1 and seen[0].source.startswith("JPEG tables (IJG quality 12)")
    with pytest.raises(SystemExit) as exit_:  # out of range: a usage error
        main(["image", str(SAMPLE), "-o", str(tmp_path / "out2"), "--model", str(model), "--strength", "3", "-q"])
    assert exit_.value.code == 2
