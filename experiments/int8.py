"""Does int8 (onnxruntime static quantisation) make a generator faster on this CPU, and what does it
cost in quality? A check for the deployment issue: int8 would ship only if it were faster.

    .venv/bin/python experiments/int8.py [--model full] [--data ../shared/data/eval/live1] [--json FILE]

Variants, all with revamp's tiling (768-px tiles, as `revamp video`): onnxruntime fp32 (the
`onnxruntime` backend), onnxruntime int8 QDQ of every quantisable op, onnxruntime int8 of the
convolutions only (the rest stays fp32), the same with the first and last convolution in fp32, and torch-bf16 (the backend `auto` picks on this CPU) for
reference. The onnxruntime sessions run with thread spinning off, so that one session's idle
threads do not slow the next (they take turns in one process). Int8: weights per output channel, activations uint8, MinMax ranges
calibrated on JPEG-compressed crops of the *training* images (never the evaluation set). Speed:
median of ``--rounds`` runs on a 1280x720 frame after a warm-up, the variants in turn. Quality: RGB PSNR on the first ``--limit``
images of ``--data`` at JPEG ``--quality``, and PSNR of each variant's output against fp32's.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from revamp.data.degrade import jpeg
from revamp.data.pairs import list_images
from revamp.evaluation.speed import machine
from revamp.inference.export import OnnxRunner, cached_onnx
from revamp.inference.restorer import Restorer
from revamp.metrics.fidelity import psnr
from revamp.models.registry import resolve_model

# The convolutions that read the input picture and write the output (cheap: 3 channels on one side).
FP32_ENDS = ["/encoder/conv_stem/Conv", "/to_rgb/Conv"]


def calibration_batches(train: Path, count: int, size: int = 256, seed: int = 0) -> list[dict]:
    """``count`` JPEG-compressed (q10-40) random crops of training images, as model inputs."""
    rng = np.random.default_rng(seed)
    files = list_images([train])
    batches = []
    for f in rng.choice(files, count, replace=False):
        img = Image.open(f).convert("RGB")
        if min(img.size) < size:
            continue
        x0, y0 = rng.integers(0, img.width - size + 1), rng.integers(0, img.height - size + 1)
        crop = jpeg(np.asarray(img.crop((x0, y0, x0 + size, y0 + size))), int(rng.integers(10, 41)))
        batches.append({"image": (crop.astype(np.float32) / 255).transpose(2, 0, 1)[None].copy()})
    return batches


def quantize(fp32: Path, out: Path, batches: list[dict], op_types: list[str] | None, exclude: list[str] | None = None) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    prepared = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=op_types,
                    nodes_to_exclude=exclude)
    return out


def seconds_per_frame(restorers: dict[str, Restorer], frame: np.ndarray, rounds: int) -> dict[str, float]:
    """Median time per variant, the variants taking turns in each round so that drift in the
    machine's speed (a shared host) hits them alike."""
    times = {name: [] for name in restorers}
    for r in restorers.values():
        r.restore_rgb(frame)  # warm-up
    for _ in range(rounds):
        for name, r in restorers.items():
            t = time.perf_counter()
            r.restore_rgb(frame)
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="full", help="a blind model (the calibration crops carry no quantiser planes)")
    parser.add_argument("--data", default="../shared/data/eval/live1")
    parser.add_argument("--train", default="../shared/data/train", help="calibration crops come from here")
    parser.add_argument("--quality", type=int, default=20)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--calibration", type=int, default=16, help="number of 256-px calibration crops")
    parser.add_argument("--rounds", type=int, default=7, help="timed runs per variant (median)")
    parser.add_argument("--json", help="also write the result to this file")
    args = parser.parse_args()

    if Restorer(args.model, device="cpu").codec_aware:
        sys.exit(f"{args.model} is codec-aware; the calibration crops carry no quantiser planes: pass a blind model")
    fp32_path = cached_onnx(resolve_model(args.model))

    def onnx_restorer(onnx_path: Path) -> Restorer:
        restorer = Restorer(args.model, device="cpu", tile=768, backend="onnxruntime")
        restorer.onnx = OnnxRunner(onnx_path, spinning=False)
        return restorer

    batches = calibration_batches(Path(args.train), args.calibration)
    files = list_images([args.data])[: args.limit]
    cleans = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    inputs = [jpeg(clean, args.quality) for clean in cleans]
    frame = np.random.default_rng(0).random((720, 1280, 3), dtype=np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        variants = {"onnxruntime fp32": onnx_restorer(fp32_path),
                    "onnxruntime int8 (all ops)": onnx_restorer(quantize(fp32_path, Path(tmp) / "all.onnx", batches, None)),
                    "onnxruntime int8 (Conv only)": onnx_restorer(quantize(fp32_path, Path(tmp) / "conv.onnx", batches, ["Conv"])),
                    "onnxruntime int8 (Conv only, first and last in fp32)": onnx_restorer(
                        quantize(fp32_path, Path(tmp) / "conv-ends.onnx", batches, ["Conv"], FP32_ENDS)),
                    "torch-bf16": Restorer(args.model, device="cpu", tile=768, backend="torch-bf16")}
        outputs = {name: [(r.restore_rgb(x.astype(np.float32) / 255) * 255 + 0.5).clip(0, 255).astype(np.uint8) for x in inputs]
                   for name, r in variants.items()}
        speed = seconds_per_frame(variants, frame, args.rounds)
    reference = outputs["onnxruntime fp32"]
    rows = {name: {"s_per_frame_1280x720": round(speed[name], 3),
                   "psnr_rgb": round(float(np.mean([psnr(o, c) for o, c in zip(out, cleans)])), 3),
                   "psnr_vs_onnxruntime_fp32": round(float(np.mean([psnr(o, r) for o, r in zip(out, reference)])), 2) if out is not reference else None}
            for name, out in outputs.items()}
    result = {"command": f"experiments/int8.py --model {args.model} --quality {args.quality} --limit {args.limit}", "machine": machine(),
              "data": f"{args.data}, first {len(files)} images, JPEG q{args.quality}",
              "jpeg_psnr_rgb": round(float(np.mean([psnr(x, c) for x, c in zip(inputs, cleans)])), 3), "variants": rows}
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
