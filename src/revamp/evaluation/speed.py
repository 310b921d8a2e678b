"""`revamp bench`: seconds per frame of the generator for each encoder, backend and frame size,
side by side in one process (the paper's claim: MobileNetV3 halves the time of ResNet34).

Each generator is built at the same decoder width (random weights: speed does not depend on
them) and run the way `revamp video` runs it: the frame padded to the 32-px grid and cut into
the same tiles (of about equal size, run side by side on a CPU). One warm-up call, then the
median of ``runs`` calls. Peak resident memory is the process's high-water mark during that
configuration (reset before each one with /proc/self/clear_refs on Linux).
"""
from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from revamp.defaults import TILE_OVERLAP, VIDEO_TILE

ENCODERS = ("mobilenetv3_small_100", "mobilenetv3_large_100", "resnet34")
SIZES = ("640x360", "1280x720", "1920x1080")
DECODERS = ("full", "light")


def available_backends() -> list[str]:
    from revamp.inference.restorer import BACKENDS
    from revamp.runtime import has_onnxruntime

    return [b for b in BACKENDS if b != "onnxruntime" or has_onnxruntime()]


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def gflops(model, h: int, w: int) -> tuple[float, float]:
    """Multiply-adds x 2 of one forward pass on the padded frame (torch's FLOP counter): the
    whole generator and its encoder alone."""
    from torch.utils.flop_counter import FlopCounterMode

    from revamp.models.contract import pad_to_multiple

    x, _, _ = pad_to_multiple(torch.zeros(1, model.config.input_planes, h, w), model.size_multiple)
    with FlopCounterMode(display=False, depth=2) as counter, torch.no_grad():
        model(x)
    encoder = sum(counter.get_flop_counts().get(f"{type(model).__name__}.encoder", {}).values())
    return counter.get_total_flops() / 1e9, encoder / 1e9


def run_bench(encoders=ENCODERS, sizes=SIZES, backends=None, width: int = 32, runs: int = 3, tile: int = VIDEO_TILE,
              tile_overlap: int = TILE_OVERLAP, progress=print, decoders=DECODERS) -> dict:
    from revamp.inference.restorer import Restorer
    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator

    backends = list(backends or available_backends())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("REVAMP_CACHE", tmp)  # ONNX exports of these throwaway models
        for encoder, decoder in ((e, d) for d in decoders for e in encoders):
            torch.manual_seed(0)
            model = UNetGenerator(UNetConfig(encoder=encoder, width=width, decoder=decoder)).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            path = Path(tmp) / f"{encoder}-{decoder}.safetensors"
            save_model(model, path, name=encoder, task="bench", recipe={})
            flops = {size: gflops(model, *_hw(size)) for size in sizes}
            for backend in backends:
                restorer = Restorer(str(path), device="cpu", tile=tile, tile_overlap=tile_overlap, backend=backend, even_tiles=True)
                for size in sizes:
                    h, w = _hw(size)
                    frame = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
                    tracked = _reset_peak_rss()
                    restorer.restore_rgb(frame)  # warm-up: oneDNN/onnxruntime pick their kernels
                    times = []
                    for _ in range(runs):
                        start = time.perf_counter()
                        restorer.restore_rgb(frame)
                        times.append(time.perf_counter() - start)
                    s = statistics.median(times)
                    row = {"encoder": encoder, "decoder": decoder, "backend": backend, "size": size, "s_per_frame": round(s, 3), "fps": round(1 / s, 3),
                           "params_m": round(params, 2), "gflops": round(flops[size][0], 3), "encoder_gflops": round(flops[size][1], 3),
                           "peak_rss_mb": round(_peak_rss_mb()) if tracked else None, "tiles": restorer.tile_count(w, h)}
                    results.append(row)
                    progress(row)
    return {"machine": machine(), "width": width, "tile": tile, "tile_overlap": tile_overlap, "runs": runs, "results": results}


def _hw(size: str) -> tuple[int, int]:
    w, h = (int(v) for v in size.lower().split("x"))
    return h, w


def bench_markdown(report: dict) -> str:
    rows = report["results"]
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    lines = ["| encoder | decoder | params (M) | size | GFLOPs (encoder) | " + " | ".join(f"{b} s/frame" for b in backends) + " | peak RSS (MB) |"]
    lines.append("|---" * (6 + len(backends)) + "|")
    for decoder in dict.fromkeys(r.get("decoder", "full") for r in rows):
        for encoder in dict.fromkeys(r["encoder"] for r in rows):
            for size in dict.fromkeys(r["size"] for r in rows):
                sel = {r["backend"]: r for r in rows if r["encoder"] == encoder and r["size"] == size and r.get("decoder", "full") == decoder}
                if not sel:
                    continue
                any_row = next(iter(sel.values()))
                peak = max((r["peak_rss_mb"] or 0) for r in sel.values())
                enc = f" ({any_row['encoder_gflops']:.1f})" if "encoder_gflops" in any_row else ""
                lines.append(f"| {encoder} | {decoder} | {any_row['params_m']} | {size} | {any_row['gflops']:.1f}{enc} | "
                             + " | ".join(f"{sel[b]['s_per_frame']:.3f}" if b in sel else "-" for b in backends) + f" | {peak or '-'} |")
    for decoder in dict.fromkeys(r.get("decoder", "full") for r in rows):
        ratio = _ratio([r for r in rows if r.get("decoder", "full") == decoder], "resnet34", "mobilenetv3_large_100")
        if ratio:
            lines += ["", f"ResNet34 / MobileNetV3-Large time per frame, {decoder} decoder: " + ", ".join(f"{k}: {v:.2f}x" for k, v in ratio.items())
                      + " (the paper: 0.27 s against 0.12 s, 2.25x, on a Titan X)."]
    shares = {(r["encoder"], r.get("decoder", "full")): r["encoder_gflops"] / r["gflops"] for r in rows if r.get("encoder_gflops") and r["gflops"]}
    if shares:
        lines += ["", "Share of the FLOPs spent in the encoder (the rest is the decoder): "
                  + ", ".join(f"{e} ({d}) {100 * v:.0f} %" for (e, d), v in shares.items()) + "."]
    lines += ["", f"Machine: {report['machine']}; decoder width {report['width']}; tiles of {report['tile']} px "
              f"(overlap {report['tile_overlap']}); median of {report['runs']} runs after one warm-up."]
    return "\n".join(lines) + "\n"


def _ratio(rows, slow: str, fast: str) -> dict[str, float]:
    out = {}
    for r in rows:
        if r["encoder"] != slow:
            continue
        match = next((q for q in rows if q["encoder"] == fast and q["size"] == r["size"] and q["backend"] == r["backend"]), None)
        if match:
            out[f"{r['backend']} {r['size']}"] = r["s_per_frame"] / match["s_per_frame"]
    return out
