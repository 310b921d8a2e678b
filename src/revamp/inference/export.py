"""ONNX export of a generator, for onnxruntime and other runtimes.

The graph takes ``image`` (N, 3 + C + 6n, H, W) in [0, 1] (C: the conditioning planes of a
codec-aware model, else 0; then a multi-frame model's n aligned frames on each side, else none),
H and W multiples of the model's
``size_multiple`` (32: pad first, as revamp's tiling does), and returns ``restored``
(N, 3, H*scale, W*scale), not clamped. Batch, height and width are dynamic; spectral norm is
already folded into the weights of every revamp model file. The model's metadata (name, scale,
size multiple, recipe) is copied into the ONNX file's metadata_props.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

OPSET = 17


def export_onnx(model_path: str | Path, out: str | Path, opset: int = OPSET) -> Path:
    from revamp.models.files import load_model, read_metadata
    from revamp.runtime import need

    onnx = need("onnx", "onnx", "ONNX export")

    model, _ = load_model(model_path, "cpu")
    model.eval()
    m = model.size_multiple
    example = torch.rand(1, model.config.input_planes, 2 * m, 3 * m)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about shape checks that padding makes static
            torch.onnx.export(model, (example,), tmp, dynamo=False, opset_version=opset, input_names=["image"],
                              output_names=["restored"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "restored": {0: "batch", 2: "out_height", 3: "out_width"}})
        proto = onnx.load(tmp)
        meta = read_metadata(model_path)
        for key, value in {**meta, "size_multiple": str(m), "scale": str(model.config.scale)}.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


class OnnxRunner:
    """Runs an exported generator with onnxruntime: (N, 3 + C, H, W) float32 tensor in, tensor out."""

    def __init__(self, onnx_path: str | Path, threads: int | None = None, spinning: bool = True):
        from revamp.runtime import need

        ort = need("onnxruntime", "onnx", "the onnxruntime backend")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        if not spinning:  # idle threads sleep: several sessions in one process then do not slow each other
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        self.scale, self.size_multiple = int(meta.get("scale", 1)), int(meta.get("size_multiple", 32))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.session.run(None, {"image": np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(y)


def cached_onnx(model_path: Path) -> Path:
    """The model exported once to ~/.cache/revamp/onnx/ (keyed by the file's content hash)."""
    import hashlib

    digest = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("REVAMP_CACHE", Path.home() / ".cache" / "revamp")) / "onnx"
    path = cache / f"{Path(model_path).stem}-{digest}-opset{OPSET}.onnx"
    if not path.is_file():
        export_onnx(model_path, path)
    return path


def max_difference(model_path: str | Path, onnx_path: str | Path, image: np.ndarray) -> float:
    """Max |torch - onnxruntime| on [0, 1] outputs for one H x W x 3 uint8 image (padded to the grid)."""
    from revamp.codec import hint_for_image
    from revamp.models.contract import forward, model_input
    from revamp.models.files import load_model

    model, _ = load_model(model_path, "cpu")
    model.eval()
    h, w = image.shape[:2]
    x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 255
    # A codec-aware model gets the planes the pixel estimator would give; a multi-frame one, the still as its own neighbours.
    planes = hint_for_image(None, image).planes(0, h, 0, w) if model.config.cond_channels else None
    x = model_input(x, model.config.cond_channels, model.config.neighbours, planes, quality=model.config.neighbour_quality)
    with torch.no_grad():
        ref = forward(model, x, model.size_multiple, model.config.scale)
    got = forward(OnnxRunner(onnx_path), x, model.size_multiple, model.config.scale)
    return float((ref - got).abs().max())


def describe(onnx_path: str | Path) -> dict:
    import onnx

    proto = onnx.load(str(onnx_path), load_external_data=False)
    return {"opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
            "metadata": {p.key: p.value for p in proto.metadata_props if p.key in ("name", "task", "scale")},
            "inputs": [json.dumps([d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input]}
