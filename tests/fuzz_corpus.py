"""A corpus of bad and odd inputs (tests/test_fuzz.py): every one must end in a one-line message or
a correct restoration, never a crash, a traceback or a half-written output.

``bad_images(folder)`` writes the pictures and returns {file name: expected outcome}, where the
outcome is "ok" (restored), "warn" (restored, with a warning) or "error" (refused with one line).
``bad_videos(folder)`` does the same for video files. Files are made here, not stored: the corpus
is small to generate and nothing binary sits in the repo.
"""
from __future__ import annotations

import io
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
from conftest import natural_image
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_declaring(width: int, height: int, bit_depth: int = 8, colour: int = 2) -> bytes:
    """A small PNG whose header declares a huge picture (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    row = b"\x00" + b"\x00" * (width * 3 * bit_depth // 8)
    body = zlib.compressobj(9)
    data = body.compress(row * min(height, 64)) + body.flush()
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _encoded(pic: np.ndarray | Image.Image, fmt: str, **opts) -> bytes:
    buf = io.BytesIO()
    (pic if isinstance(pic, Image.Image) else Image.fromarray(pic)).save(buf, fmt, **opts)
    return buf.getvalue()


def _png16(arr: np.ndarray) -> bytes:
    import cv2

    ok, png = cv2.imencode(".png", (arr.astype(np.uint16) * 257)[..., ::-1])
    assert ok
    return png.tobytes()


def _tiff16(arr: np.ndarray) -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, arr.astype(np.uint16) * 257, photometric="rgb")
    return buf.getvalue()


def _flip(data: bytes, seed: int, count: int, start: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    for i in rng.integers(start, len(b), count):
        b[i] ^= int(rng.integers(1, 256))
    return bytes(b)


def bad_images(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rgb = natural_image(48, 64, seed=3)
    png, jpg = _encoded(rgb, "PNG"), _encoded(rgb, "JPEG", quality=30)
    files: dict[str, tuple[bytes, str]] = {
        "good.png": (png, "ok"),
        "good.jpg": (jpg, "ok"),
        "empty.png": (b"", "error"),
        "empty.jpg": (b"", "error"),
        "text.png": (b"this is not a picture\n", "error"),
        "random.jpg": (np.random.default_rng(1).bytes(4000), "error"),
        "random.png": (b"\x89PNG\r\n\x1a\n" + np.random.default_rng(2).bytes(4000), "error"),
        "random.tif": (b"II*\x00" + np.random.default_rng(3).bytes(4000), "error"),
        "random.webp": (b"RIFF\x00\x10\x00\x00WEBP" + np.random.default_rng(4).bytes(4000), "error"),
        "random.gif": (b"GIF89a" + np.random.default_rng(5).bytes(2000), "error"),
        "random.bmp": (b"BM" + np.random.default_rng(6).bytes(2000), "error"),
        "header_only.png": (png[:33], "error"),
        "truncated_half.png": (png[: len(png) // 2], "error"),
        "truncated_half.jpg": (jpg[: len(jpg) // 2], "error"),
        "no_eoi.jpg": (jpg[:-2], "ok"),  # every decoder shows it
        "truncated.webp": (_encoded(rgb, "WEBP", quality=50)[:60], "error"),
        "truncated.gif": (_encoded(rgb, "GIF")[:100], "error"),
        "truncated.bmp": (_encoded(rgb, "BMP")[:500], "error"),
        "truncated.tif": (_encoded(rgb, "TIFF")[:300], "error"),
        "bad_crc.png": (png[:40] + bytes([png[40] ^ 0xFF]) + png[41:], "error"),
        "bomb_784mp.png": (_png_declaring(28000, 28000), "error"),
        "bomb_wide.png": (_png_declaring(30_000, 2), "ok"),  # tiny, but very wide
        "bomb_16bit.png": (_png_declaring(20000, 20000, bit_depth=16), "error"),
        "zero_width.png": (_png_declaring(0, 10), "error"),
        "png16.png": (_png16(rgb), "ok"),
        "png16_truncated.png": (_png16(rgb)[:200], "error"),
        "tiff16.tif": (_tiff16(rgb), "ok"),
        "tiff16_truncated.tif": (_tiff16(rgb)[:400], "error"),
        "ppm_bad_maxval.ppm": (b"P6\n64 48\n70000\n" + rgb.tobytes(), "error"),
        "ppm_truncated.ppm": (b"P6\n64 48\n255\n" + rgb.tobytes()[:1000], "error"),
        "pgm_negative.pgm": (b"P5\n-4 48\n255\n" + rgb[..., 0].tobytes(), "error"),
        "tiny_1x1.png": (_encoded(rgb[:1, :1], "PNG"), "ok"),
        "thin_1x300.png": (_encoded(np.repeat(rgb[:1], 1, 0)[:, :1].repeat(300, 0), "PNG"), "ok"),
        "palette_transparent.png": (_encoded(Image.fromarray(rgb).convert("P"), "PNG", transparency=0), "ok"),
        "cmyk.jpg": (_encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG"), "warn"),
    }
    # Animated and multi-page: only the first frame is restored, and the user is told.
    frames = [Image.fromarray(natural_image(48, 64, seed=s)) for s in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    files["animated.gif"] = (buf.getvalue(), "warn")
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    files["multipage.tif"] = (buf.getvalue(), "warn")
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    files["animated.webp"] = (buf.getvalue(), "warn")
    # Byte flips in the compressed data of valid files: decoders may or may not accept them.
    for seed in range(8):
        files[f"flipped_{seed}.jpg"] = (_flip(jpg, seed, 6, start=200), "any")
        files[f"flipped_{seed}.png"] = (_flip(png, seed + 100, 6, start=40), "any")
        files[f"flipped16_{seed}.tif"] = (_flip(_tiff16(rgb), seed + 200, 8, start=8), "any")
    # Stems made unique (x.png and x.jpg would both be restored to x.png).
    files = {f"{Path(n).stem}_{Path(n).suffix[1:]}{Path(n).suffix}": v for n, v in files.items()}
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    # A 16-bit PNG whose name is not UTF-8 (an old Windows archive copied to Linux).
    weird = os.fsencode(folder) + b"/archive_\xe9t\xe9_16bit.png"
    with open(weird, "wb") as f:
        f.write(_png16(rgb))
    outcomes = {name: outcome for name, (_, outcome) in files.items()}
    outcomes[os.fsdecode(b"archive_\xe9t\xe9_16bit.png")] = "ok"
    return outcomes


def bad_videos(folder: Path, ffmpeg: str) -> dict[str, str]:
    """Video files made with the system ffmpeg; {name: "ok" | "warn" | "error"}."""
    folder.mkdir(parents=True, exist_ok=True)

    def make(name: str, *args: str) -> Path:
        path = folder / name
        subprocess.run([ffmpeg, "-v", "error", "-y", *args, str(path)], check=True)
        return path

    src = ["-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "12"]
    good = make("good.mp4", *src, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-qp", "37")
    data = good.read_bytes()
    ts = make("good.ts", *src, "-c:v", "mpeg2video", "-q:v", "10").read_bytes()
    outcomes = {"good.mp4": "ok", "good.ts": "ok"}
    raw: dict[str, tuple[bytes, str]] = {
        "empty.mp4": (b"", "error"),
        "text.mkv": (b"not a video\n", "error"),
        "random.mp4": (np.random.default_rng(7).bytes(20000), "error"),
        "truncated_head.mp4": (data[:400], "error"),
        "truncated_half.ts": (ts[: len(ts) // 2], "warn"),  # restores what is there and says the file is damaged
        "flipped.ts": (_flip(ts, 9, 30, start=2000), "any"),
    }
    for name, (blob, outcome) in raw.items():
        (folder / name).write_bytes(blob)
        outcomes[name] = outcome
    make("audio_only.mp4", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac")
    outcomes["audio_only.mp4"] = "error"
    make("interlaced.mp4", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "6", "-vf", "tinterlace=4",
         "-c:v", "libx264", "-flags", "+ilme+ildct")
    outcomes["interlaced.mp4"] = "ok"
    make("tenbit.mkv", *src, "-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-qp", "30")
    outcomes["tenbit.mkv"] = "warn"  # restored in 8 bits, and the user is told
    make("odd_size.mkv", "-f", "lavfi", "-i", "testsrc=s=95x63:r=25", "-frames:v", "6", "-c:v", "ffv1", "-pix_fmt", "yuv444p")
    outcomes["odd_size.mkv"] = "warn"  # written at 94x62, and the user is told
    make("two_streams.mkv", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25:d=0.48", "-f", "lavfi", "-i", "testsrc=s=96x64:r=25:d=0.48",
         "-map", "0:v", "-map", "1:v", "-c:v", "libx264", "-qp", "37")
    outcomes["two_streams.mkv"] = "warn"  # the first is restored, and the user is told the other is left out
    make("one_frame.mp4", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "1", "-c:v", "libx264")
    outcomes["one_frame.mp4"] = "ok"
    make("tiny_16x16.mp4", "-f", "lavfi", "-i", "testsrc2=s=16x16:r=25", "-frames:v", "4", "-c:v", "libx264")
    outcomes["tiny_16x16.mp4"] = "ok"
    make("mpeg4.avi", *src, "-c:v", "mpeg4", "-q:v", "12")
    outcomes["mpeg4.avi"] = "ok"
    make("gray.mkv", *src, "-c:v", "ffv1", "-pix_fmt", "gray")
    outcomes["gray.mkv"] = "ok"
    (folder / "y4m_bad_header.y4m").write_bytes(b"YUV4MPEG2 W-5 H0 F25:1\nFRAME\n" + b"\x00" * 100)
    outcomes["y4m_bad_header.y4m"] = "error"
    return outcomes
