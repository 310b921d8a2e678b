"""The Python API: ``Restorer("default").restore(image)``."""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from revamp.codec import BLIND, CodecHint, hint_for_image, jpeg_step
from revamp.defaults import STRENGTH, TILE, TILE_OVERLAP
from revamp.imageio import Picture, picture_from_pil
from revamp.inference.tiling import Tile, TilePool, even_tile, restore_tiled, tile_windows
from revamp.models.files import blind_video_codecs, exact_video_rgb, hint_scales, load_model, stabiliser_mix
from revamp.models.registry import resolve_model
from revamp.models.unet import UNetConfig, fold_batchnorm
from revamp.runtime import cpu_has_bf16_units, has_onnxruntime, pick_device

BACKENDS = ("torch", "torch-bf16", "onnxruntime")
# Strength above 1 blends in a Gaussian blur of the restored tile (sigma in pixels): a low-pass,
# so high-frequency energy falls at every step from strength 1 to 2, whatever the picture (an
# edge-preserving bilateral filter sharpens edges and raised it on some pictures).
# bench/strength.py, docs/codec.md.
SMOOTHING_SIGMA = 0.7


def pick_backend(backend: str, device: torch.device) -> str:
    """``auto``: the fastest backend measured on this kind of machine (docs/results.md, `revamp bench`)."""
    if backend == "auto":
        if device.type != "cpu":
            return "torch"
        return "torch-bf16" if cpu_has_bf16_units() else "onnxruntime" if has_onnxruntime() else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use auto, {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device.type != "cpu":
        raise ValueError("the onnxruntime backend runs on the CPU: use --device cpu")
    return backend


def compile_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """torch.compile (inductor) with the weights frozen as constants, so convolutions are prepacked.
    Worth it for long jobs only: the first call of each input shape compiles for up to a minute or
    more and needs a C++ compiler (`bench/model_ab.py --change compile` measures the gain). Sets
    inductor's global ``freezing`` option."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model)


class Restorer:
    """Restores images with a generator model.

    ``model`` is a shipped model name (see ``revamp models``) or a path to a
    revamp .safetensors file. Images larger than ``tile`` pixels on a side are
    processed in overlapping tiles, so memory stays bounded for any size.
    ``compile``: torch.compile the network (torch backends; see ``compile_for_inference``).
    ``even_tiles``: cut each picture into tiles of about equal size, as many as ``tile`` gives
    (``revamp.inference.tiling.even_tile``; `revamp video`, whose frames' tiles run side by side).
    ``strength`` (0 to 2): 1 is the model as trained; 0 gives the input back, 0.5 half of the
    model's correction; above 1 the result is also slightly blurred (``_strengthen``).
    ``ensemble``: the mean of the restorations of the picture's eight flips and rotations, mapped
    back (the restoration literature's x8 self-ensemble): more fidelity for 8x the time; a
    multi-frame model's neighbours are flipped and rotated with the frame.
    """

    def __init__(self, model: str = "default", device: str = "auto", tile: int = TILE, tile_overlap: int = TILE_OVERLAP, backend: str = "torch",
                 strength: float = STRENGTH, compile: bool = False, even_tiles: bool = False, ensemble: bool = False):
        if not 0 <= strength <= 2:
            raise ValueError(f"strength must be between 0 and 2, not {strength}")
        self.strength, self.ensemble = strength, ensemble
        self.device = pick_device(device)
        self.model_path: Path = resolve_model(model)
        self.model, self.metadata = load_model(self.model_path, self.device)
        self.eager_model = self.model
        self.scale: int = self.model.config.scale
        # Codec-aware models take the quantiser the file reports (revamp.codec) as extra planes.
        self.codec_aware: bool = self.model.config.cond_channels > 0
        recipe = self.metadata.get("recipe") or {}
        # Video codecs it learnt blind: their frames' quantisers are withheld from it (restore_video_frame).
        self.blind_codecs: frozenset[str] = blind_video_codecs(recipe)
        # The share of a video frame's quantiser steps it is told, by codec (revamp.video.job.restore_video_frame;
        # a codec not in it: revamp.defaults.VIDEO_HINT_SCALE).
        self.hint_scales: dict[str, float] = hint_scales(recipe)
        # How its video frames become RGB: as in its training (exact, or FFmpeg's fast conversion).
        self.exact_video_rgb: bool = exact_video_rgb(recipe)
        # The mix its video frames are stabilised at unless one is asked for (revamp.video.stabilize).
        self.stabilize: float = stabiliser_mix(recipe)
        # Multi-frame models also take this many aligned frames on each side, prepared as its
        # config's neighbour fields say (revamp.video.neighbours.neighbour_planes).
        self.neighbours: int = self.model.config.neighbours
        self.config: UNetConfig = self.model.config
        self.tile, self.tile_overlap, self.even_tiles = tile, tile_overlap, even_tiles
        self.backend = pick_backend(backend, self.device)
        self.onnx = None
        if self.backend == "onnxruntime":
            from revamp.inference.export import OnnxRunner, cached_onnx

            self.onnx = OnnxRunner(cached_onnx(self.model_path))
        else:
            fold_batchnorm(self.model)
            if self.device.type == "cpu":
                self.model = self.eager_model = self.model.to(memory_format=torch.channels_last)
            if compile:
                self.model = compile_for_inference(self.model)
        # Tiles side by side, one intra-op thread each (TilePool); not for a compiled network,
        # whose first calls compile, nor onnxruntime, which keeps its own threads.
        threads = torch.get_num_threads()
        self.tile_pool = TilePool(threads) if self.device.type == "cpu" and self.onnx is None and not compile and threads > 1 else None

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self._strengthen(x, self._network(x))

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        if self.onnx is not None:
            return self.onnx(x).clamp_(0, 1)
        x = x.to(self.device)
        if self.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.backend == "torch-bf16"):
            try:
                y = self.model(x)
            except Exception as exc:  # compiling failed (no C++ compiler, an unsupported op, ...): run eager
                if self.model is self.eager_model:
                    raise
                reason = (str(exc).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"torch.compile failed ({type(exc).__name__}: {reason}); running uncompiled", stacklevel=2)
                self.model = self.eager_model
                y = self.model(x)
        return y.float().clamp_(0, 1)

    def _strengthen(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``strength`` on one batch of tiles (input ``x``, the network's output ``y``): up to 1, that
        share of the network's correction of the input (0 gives the input back; for super-resolution,
        its bicubic upscale); above 1, the full correction, then that much (strength - 1) of a
        slight blur of it."""
        s = self.strength
        if s == 1:
            return y
        if s < 1:
            base = x[:, :3].to(y.device, y.dtype)  # may be a view of the picture: not written to
            if self.scale > 1:
                base = F.interpolate(base, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp_(0, 1)
            return torch.lerp(base, y, s)
        out = y.permute(0, 2, 3, 1).contiguous().cpu().numpy()
        for image in out:
            image += (s - 1) * (cv2.GaussianBlur(image, (0, 0), SMOOTHING_SIGMA) - image)
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(y.device).clamp_(0, 1)

    def tile_size(self, width: int, height: int) -> Tile:
        if self.even_tiles:
            return even_tile(height, width, self.tile, self.tile_overlap, self.eager_model.size_multiple)
        return self.tile

    def tile_count(self, width: int, height: int) -> int:
        """Tiles (``on_tile`` calls) one picture takes: with the ensemble, those of its eight views."""
        def count(w: int, h: int) -> int:
            return len(tile_windows(h, w, self.tile_size(w, h), self.tile_overlap, self.eager_model.size_multiple))

        if not self.ensemble:
            return count(width, height)
        w, h = width + -width % 16, height + -height % 16
        return 4 * (count(w, h) + count(h, w))

    def restore_rgb(self, rgb: np.ndarray, on_tile: Callable[[], None] | None = None, inplace: bool = False,
                    hint: CodecHint | None = None, neighbours: np.ndarray | None = None) -> np.ndarray:
        """H x W x 3 float32 in [0, 1] -> (H*s) x (W*s) x 3 float32. ``inplace`` (scale 1) writes
        the result over ``rgb``: a big picture then needs no second full-size buffer. ``hint``: what
        the file says about its quantiser (codec-aware models; None: estimated from the pixels).
        ``neighbours``: multi-frame models' aligned neighbouring frames (revamp.video.neighbours;
        None: the picture stands alone)."""
        if self.ensemble:
            return self._restore_ensemble(rgb, on_tile, hint, neighbours)
        return self._restore_once(rgb, on_tile, inplace, hint, neighbours)

    def _restore_ensemble(self, rgb: np.ndarray, on_tile: Callable[[], None] | None, hint: CodecHint | None,
                          neighbours: np.ndarray | None) -> np.ndarray:
        """The mean of the restorations of the eight flips and rotations of ``rgb``, each mapped back.
        The picture is first padded to a multiple of 16 px (edge pixels), so that every transform
        keeps the JPEG/MPEG block grid where it was and the codec hint's blocks move with the pixels;
        a multi-frame model's neighbour planes are padded and transformed with it."""
        h, w = rgb.shape[:2]
        ph, pw = -h % 16, -w % 16
        padded = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
        if neighbours is not None:  # (without them, each view stands alone as a still: _restore_once)
            neighbours = np.pad(neighbours, ((0, 0), (0, ph), (0, pw)), mode="edge").transpose(1, 2, 0)  # H x W x C for _dihedral
        steps, block = None, 8
        if self.codec_aware:
            hint = hint if hint is not None else hint_for_image(None, rgb)
            if hint.steps is not None:
                block = hint.block
                rows, cols = -(-(h + ph) // block), -(-(w + pw) // block)
                steps = np.pad(hint.steps, ((0, max(rows - hint.steps.shape[0], 0)), (0, max(cols - hint.steps.shape[1], 0))), mode="edge")[:rows, :cols]
        total = np.zeros(((h + ph) * self.scale, (w + pw) * self.scale, 3), dtype=np.float32)
        for k in range(8):
            view = _dihedral(padded, k).copy()  # a copy even for k = 0: the view is restored in place
            told = None
            if self.codec_aware:
                told = BLIND if steps is None else CodecHint(np.ascontiguousarray(_dihedral(steps, k)), block, hint.source)
            planes = None if neighbours is None else np.ascontiguousarray(_dihedral(neighbours, k).transpose(2, 0, 1))
            total += _dihedral_inverse(self._restore_once(view, on_tile, True, told, planes), k)
        return total[: h * self.scale, : w * self.scale] / 8

    def _restore_once(self, rgb: np.ndarray, on_tile: Callable[[], None] | None, inplace: bool, hint: CodecHint | None,
                      neighbours: np.ndarray | None) -> np.ndarray:
        image = torch.from_numpy(rgb).permute(2, 0, 1)  # a view: tiles are copied one at a time
        h, w = rgb.shape[:2]
        condition = None
        if self.codec_aware:
            hint = hint if hint is not None else hint_for_image(None, rgb)
            condition = hint.planes
        if self.neighbours:
            if neighbours is None:
                from revamp.video.neighbours import still_planes

                neighbours = still_planes(rgb, self.neighbours, self.config.neighbour_quality)
            condition = functools.partial(_with_neighbours, condition, neighbours)
        if inplace and self.scale == 1 and rgb.dtype == np.float32 and rgb.flags.c_contiguous and rgb.flags.writeable:
            dest = rgb
        else:
            dest = np.empty((h * self.scale, w * self.scale, 3), dtype=np.float32)
        return restore_tiled(self._run, image, self.scale, self.tile_size(w, h), self.tile_overlap, self.eager_model.size_multiple,
                             on_tile, dest, condition, self.tile_pool)

    def restore_picture(self, pic: Picture, on_tile: Callable[[], None] | None = None, inplace: bool = False,
                        hint: CodecHint | None = None) -> Picture:
        rgb = self.restore_rgb(pic.rgb, on_tile, inplace, hint)
        alpha = pic.alpha
        if alpha is not None and self.scale > 1:
            h, w = alpha.shape
            alpha = np.asarray(Image.fromarray(alpha, "F").resize((w * self.scale, h * self.scale), Image.Resampling.BICUBIC)).clip(0, 1)
        return Picture(rgb, alpha, pic.gray, pic.bits, pic.icc_profile, pic.exif)

    def restore(self, image: Image.Image | np.ndarray, hint: CodecHint | None = None) -> Image.Image | np.ndarray:
        """Restore a PIL image or a numpy array; the result has the input's type, mode and dtype.

        Arrays: H x W (gray), H x W x 3 (RGB) or H x W x 4 (RGBA); uint8, uint16,
        or float in [0, 1]. ``hint`` (codec-aware models): the picture's quantisers; by default a
        PIL image opened from a JPEG file tells its tables, anything else is estimated from pixels.
        """
        if isinstance(image, Image.Image):
            pic = picture_from_pil(image, image.info.get("icc_profile"), None)
            if hint is None and self.codec_aware and image.format == "JPEG" and getattr(image, "quantization", None):
                hint = CodecHint.constant(jpeg_step(np.asarray(image.quantization[0])), image.height, image.width, "JPEG tables")
            out = self.restore_picture(pic, hint=hint)
            return _to_pil(out, image.mode)
        if isinstance(image, np.ndarray):
            return self._restore_array(image, hint)
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")

    def _restore_array(self, arr: np.ndarray, hint: CodecHint | None) -> np.ndarray:
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ValueError(f"expected an H x W, H x W x 3 or H x W x 4 array, got shape {arr.shape}")
        if arr.dtype == np.uint8:
            top = 255.0
        elif arr.dtype == np.uint16:
            top = 65535.0
        elif np.issubdtype(arr.dtype, np.floating):
            top = 1.0
        else:
            raise ValueError(f"unsupported array dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
        x = arr.astype(np.float32) / top
        gray = x.ndim == 2 or x.shape[2] == 1
        if gray:
            x = x.reshape(x.shape[0], x.shape[1])
            pic = Picture(np.repeat(x[..., None], 3, axis=2), gray=True)
        else:
            pic = Picture(np.ascontiguousarray(x[..., :3]), x[..., 3] if x.shape[2] == 4 else None)
        out = self.restore_picture(pic, hint=hint)
        y = out.rgb.mean(axis=2) if gray else out.rgb
        if out.alpha is not None:
            y = np.dstack([y, out.alpha])
        if arr.ndim == 3 and arr.shape[2] == 1:
            y = y[..., None]
        if top == 1.0:
            return y.astype(arr.dtype)
        return (np.clip(y, 0, 1) * top + 0.5).astype(arr.dtype)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the eight flips and rotations of an H x W (x C) array (k = 0: itself)."""
    a = np.rot90(a, k % 4)
    return a[:, ::-1] if k >= 4 else a


def _dihedral_inverse(a: np.ndarray, k: int) -> np.ndarray:
    a = a[:, ::-1] if k >= 4 else a
    return np.rot90(a, -(k % 4))


def _with_neighbours(condition: Callable[[int, int, int, int], np.ndarray] | None, neighbours: np.ndarray,
                     y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """A window's extra input planes: the codec planes (if any), then the neighbouring frames'."""
    window = neighbours[:, y0:y1, x0:x1]
    return window if condition is None else np.concatenate([condition(y0, y1, x0, x1), window])


def _to_pil(pic: Picture, mode: str) -> Image.Image:
    if pic.gray:
        if pic.bits == 16:
            return Image.fromarray((pic.rgb.mean(axis=2) * 65535 + 0.5).astype(np.uint16))
        arr = (np.clip(pic.rgb.mean(axis=2), 0, 1) * 255 + 0.5).astype(np.uint8)
        if pic.alpha is not None:
            return Image.fromarray(np.dstack([arr, (pic.alpha * 255 + 0.5).astype(np.uint8)]), "LA")
        return Image.fromarray(arr, "L")
    arr = (np.clip(pic.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    if pic.alpha is not None:
        return Image.fromarray(np.dstack([arr, (pic.alpha * 255 + 0.5).astype(np.uint8)]), "RGBA")
    return Image.fromarray(arr, "RGB")
