"""Reading and writing real-world image files.

What a user's file carries is kept: EXIF orientation is applied (and reset in
the EXIF we write back), the ICC profile and alpha channel are carried over,
grayscale stays grayscale, and 16-bit PNG/TIFF come back 16-bit (8-bit formats
such as JPEG and WebP are written 8-bit). CMYK is converted to RGB with a
warning. Outputs are written atomically: a temporary file in the same folder,
then a rename, so an interrupted run never leaves a half-written image.
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

# Pictures larger than this are refused before they are decoded (a decompression bomb declares a
# huge size in a small file). 200 MP is a 16000 x 12500 archive scan; restoring it needs about
# 5 GB (bench/peak_memory.py: 1.9 GB at 48 MP, about 21 bytes a pixel over the process's 0.9 GB).
# Raise it with `revamp image --max-pixels`.
MAX_PIXELS = 200_000_000
Image.MAX_IMAGE_PIXELS = None  # the check in read_image replaces PIL's warn-then-fail default

INPUT_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pnm"}
OUTPUT_FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tiff": ".tif"}


class ImageReadError(Exception):
    """An input that cannot be restored; the message is one line for the user."""


@dataclass
class Picture:
    """Pixels as float32 RGB in [0, 1] plus everything needed to write them back faithfully."""

    rgb: np.ndarray  # H x W x 3 float32
    alpha: np.ndarray | None = None  # H x W float32 in [0, 1]
    gray: bool = False
    bits: int = 8
    icc_profile: bytes | None = None
    exif: bytes | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def _png_bit_depth(path: Path) -> int | None:
    with path.open("rb") as f:
        head = f.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def _read_high_bit_rgb(path: Path, fmt: str) -> np.ndarray | None:
    """16-bit colour PNG/TIFF, which PIL would silently truncate to 8 bits."""
    if fmt == "PNG" and _png_bit_depth(path) == 16:
        import cv2

        # Decoded from bytes: cv2.imread on a file name that is not valid UTF-8 crashes the process.
        arr = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ImageReadError(f"{path}: cannot decode 16-bit PNG (damaged or truncated)")
        if arr.ndim != 3:
            return None
        return arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # BGR(A) -> RGB(A)
    if fmt == "TIFF":
        import tifffile

        try:
            arr = tifffile.imread(path)
        except Exception as exc:  # noqa: BLE001 - tifffile raises many types on damaged files
            raise ImageReadError(f"{path}: cannot decode TIFF ({_one_line(exc)})") from None
        if arr.dtype == np.uint16 and arr.ndim == 3 and arr.shape[2] in (3, 4):
            return arr
    return None


def _apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1..8) for arrays that PIL cannot transpose (16-bit colour)."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: a.swapaxes(0, 1)[:, ::-1],
           7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: a.swapaxes(0, 1)[::-1]}
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


def read_dataset_image(path: str | Path, keep_gray: bool = False) -> np.ndarray:
    """An 8-bit picture of a training or evaluation set, pixels as stored (no EXIF rotation, no
    colour management): uint8 RGB, or H x W for a grayscale file when ``keep_gray``. What the
    datasets' published numbers were measured on; ``read_image`` is for users' files."""
    with Image.open(path) as im:
        if keep_gray and im.mode in ("L", "I;16", "1"):
            return np.asarray(im.convert("L"))
        return np.asarray(im.convert("RGB"))


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> Picture:
    """The picture in ``path``; ImageReadError (one line) for anything that cannot be restored,
    including pictures over ``max_pixels``, which are refused before they are decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # decoders warn about damaged metadata on stderr; the pixels are what count
        return _read(Path(path), max_pixels)


def _read(path: Path, max_pixels: int) -> Picture:
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with Image.open(_openable(path)) as im:
            w, h = im.size
            if w < 1 or h < 1:
                raise ImageReadError(f"{path}: the file declares an empty picture ({w}x{h})")
            if w * h > max_pixels:
                raise ImageReadError(f"{path}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                                     f"{max_pixels / 1e6:g} (--max-pixels)")
            fmt = im.format or ""
            frames = getattr(im, "n_frames", 1)
            icc = im.info.get("icc_profile")
            exif = im.getexif()
            orientation = int(exif.get(0x0112, 1))
            high = _read_high_bit_rgb(path, fmt)
            if high is not None:
                return _from_array(_apply_orientation(high, orientation), 16, icc, exif, gray=False)
            im.load()  # decode now, so a damaged file fails here with a clear message
            im = ImageOps.exif_transpose(im)
            pic = picture_from_pil(im, icc, exif)
            if frames > 1:
                pic.warnings.append(f"only the first of its {frames} frames was restored")
            return pic
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file, or a format revamp cannot read") from None
    except MemoryError:
        raise ImageReadError(f"{path}: not enough memory to decode it") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types on damaged files; each is one line for the user
        raise ImageReadError(f"{path}: cannot decode image ({_one_line(exc)})") from None


def _openable(path: Path) -> Path | io.BytesIO:
    """``path``, or for a JPEG that lacks only its end-of-image marker (cut by a copy or a camera)
    its bytes with the marker added: such a file decodes fully, as in every viewer, while a JPEG
    cut shorter still fails to decode."""
    with path.open("rb") as f:
        head = f.read(2)
        f.seek(max(f.seek(0, os.SEEK_END) - 2, 0))
        tail = f.read(2)
    if head == b"\xff\xd8" and tail != b"\xff\xd9":
        return io.BytesIO(path.read_bytes() + b"\xff\xd9")
    return path


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _exif_without_orientation(exif: Image.Exif | None) -> bytes | None:
    if exif is None or not len(exif):
        return None
    if 0x0112 in exif:
        exif[0x0112] = 1
    try:
        return exif.tobytes()
    except Exception:  # malformed maker notes: drop EXIF rather than fail the image
        return None


def _from_array(arr: np.ndarray, bits: int, icc, exif, gray: bool) -> Picture:
    scale = 65535.0 if bits == 16 else 255.0
    arr = arr.astype(np.float32)
    arr /= scale  # in place: a 48-MP picture is 576 MB in float32
    alpha = None
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr, alpha = arr[..., :3], arr[..., 3]
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return Picture(np.ascontiguousarray(arr), alpha, gray, bits, icc, _exif_without_orientation(exif))


def picture_from_pil(im: Image.Image, icc, exif) -> Picture:
    notes = []
    mode = im.mode
    if mode == "CMYK":
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                im = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
                notes.append("CMYK converted to sRGB with its ICC profile")
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
                notes.append("CMYK converted to RGB (its ICC profile could not be used)")
        else:
            im = im.convert("RGB")
            notes.append("CMYK converted to RGB without a colour profile; colours may shift")
        icc = None  # the output is RGB, the CMYK profile no longer describes it
        mode = "RGB"
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im).astype(np.int64).clip(0, 65535).astype(np.uint16)
        pic = _from_array(arr, 16, icc, exif, gray=True)
    elif mode == "F":
        arr = (np.asarray(im).clip(0, 1) * 65535).round().astype(np.uint16)
        pic = _from_array(arr, 16, icc, exif, gray=True)
    elif mode in ("1", "L", "LA", "La"):
        arr = np.asarray(im.convert("LA"))
        gray = arr[..., 0]
        has_alpha = mode in ("LA", "La")
        pic = _from_array(np.dstack([gray] * 3 + ([arr[..., 1]] if has_alpha else [])), 8, icc, exif, gray=True)
    else:
        has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
        arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        pic = _from_array(arr, 8, icc, exif, gray=False)
    pic.warnings += notes
    return pic


# --- writing ---------------------------------------------------------------


def output_suffix(fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[fmt]


def _quantise(planes: list[np.ndarray], bits: int, rows: int = 256) -> np.ndarray:
    """[0, 1] float planes to one H x W x C array of rounded integers, a band of rows at a time,
    so a big picture needs no full-size float temporary."""
    top = 65535 if bits == 16 else 255
    h, w = planes[0].shape
    out = np.empty((h, w, len(planes)), dtype=np.uint16 if bits == 16 else np.uint8)
    for r in range(0, h, rows):
        band = np.stack([p[r : r + rows] for p in planes], axis=2)
        np.clip(band, 0, 1, out=band)
        band *= top
        band += 0.5
        out[r : r + rows] = band
    return out


def encode_image(pic: Picture, fmt: str) -> bytes:
    """Encode a picture to bytes in png | jpg | webp | tiff."""
    bits = 16 if pic.bits == 16 and fmt in ("png", "tiff") else 8
    if pic.gray:
        planes = [pic.rgb.mean(axis=2)]
    else:
        planes = [pic.rgb[..., c] for c in range(3)]
    keep_alpha = pic.alpha is not None and fmt != "jpg"
    if keep_alpha:
        planes.append(pic.alpha)
    arr = _quantise(planes, bits)
    if bits == 16:
        return _encode_16bit(arr, fmt, pic.icc_profile)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    im = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    opts: dict = {}
    if pic.icc_profile:
        opts["icc_profile"] = pic.icc_profile
    if pic.exif and fmt in ("jpg", "webp", "png", "tiff"):
        opts["exif"] = pic.exif
    buf = io.BytesIO()
    if fmt == "png":
        im.save(buf, "PNG", compress_level=6, **opts)
    elif fmt == "jpg":
        im.save(buf, "JPEG", quality=95, subsampling=0, **opts)
    elif fmt == "webp":
        im.save(buf, "WEBP", quality=95, method=4, **opts)
    elif fmt == "tiff":
        im.save(buf, "TIFF", compression="tiff_deflate", **opts)
    else:
        raise ValueError(f"unknown output format {fmt!r}")
    return buf.getvalue()


def _encode_16bit(arr: np.ndarray, fmt: str, icc: bytes | None) -> bytes:
    if fmt == "tiff":
        import tifffile

        buf = io.BytesIO()
        photometric = "minisblack" if arr.shape[2] <= 2 else "rgb"
        data = arr[..., 0] if arr.shape[2] == 1 else arr
        extra = {"extrasamples": [2]} if arr.shape[2] in (2, 4) else {}
        tifffile.imwrite(buf, data, photometric=photometric, compression="zlib", iccprofile=icc, **extra)
        return buf.getvalue()
    import cv2

    if arr.shape[2] >= 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]  # RGB(A) -> BGR(A)
    data = arr[..., 0] if arr.shape[2] == 1 else arr
    if arr.shape[2] == 2:  # cv2 cannot write gray+alpha; PNG 16-bit LA through PIL is not supported either
        raise ValueError("16-bit grayscale with alpha can only be written as TIFF")
    ok, png = cv2.imencode(".png", data)
    if not ok:
        raise ValueError("PNG encoding failed")
    return _png_with_icc(png.tobytes(), icc) if icc else png.tobytes()


def _png_with_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (cv2 does not write colour profiles)."""
    payload = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(payload)) + b"iCCP" + payload
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + payload) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write bytes to path via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_image(pic: Picture, path: str | Path, fmt: str) -> None:
    write_atomic(path, encode_image(pic, fmt))
