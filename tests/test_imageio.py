import io

import numpy as np
import pytest
from conftest import natural_image
from PIL import Image, ImageCms

from revamp.imageio import ImageReadError, Picture, read_image, save_image, write_atomic


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_exif_orientation_is_applied_and_reset(tmp_path):
    img = Image.fromarray(natural_image(40, 64))  # landscape pixels, stored "rotated 90 CW"
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, quality=95, exif=exif.tobytes())
    pic = read_image(path)
    assert pic.size == (40, 64)  # displayed upright: portrait
    out = tmp_path / "out.jpg"
    save_image(pic, out, "jpg")
    with Image.open(out) as im:
        assert im.size == (40, 64)
        assert im.getexif().get(0x0112, 1) == 1  # not rotated a second time by viewers


def test_icc_profile_and_alpha_are_kept(tmp_path):
    rgba = np.dstack([natural_image(48, 64), np.linspace(0, 255, 64, dtype=np.uint8)[None].repeat(48, 0)])
    path = tmp_path / "a.png"
    icc = srgb_icc()
    Image.fromarray(rgba, "RGBA").save(path, icc_profile=icc)
    pic = read_image(path)
    assert pic.alpha is not None and pic.icc_profile == icc
    out = tmp_path / "o.png"
    save_image(pic, out, "png")
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.info.get("icc_profile") == icc
        assert np.array_equal(np.asarray(im)[..., 3], rgba[..., 3])


def test_grayscale_stays_grayscale(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(natural_image(32, 32)[..., 0], "L").save(path)
    pic = read_image(path)
    assert pic.gray
    save_image(pic, tmp_path / "o.png", "png")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "L"


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_colour_round_trip(tmp_path, fmt):
    import cv2
    import tifffile

    rgb16 = (np.random.default_rng(0).random((20, 30, 3)) * 65535).astype(np.uint16)
    path = tmp_path / f"in.{fmt}"
    if fmt == "png":
        cv2.imwrite(str(path), rgb16[..., ::-1])
    else:
        tifffile.imwrite(path, rgb16, photometric="rgb")
    pic = read_image(path)
    assert pic.bits == 16 and not pic.gray
    assert np.abs(pic.rgb * 65535 - rgb16).max() < 0.5  # nothing truncated to 8 bits
    out = tmp_path / f"out.{fmt}"
    pic.icc_profile = srgb_icc()
    save_image(pic, out, fmt)
    back = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., ::-1] if fmt == "png" else tifffile.imread(out)
    assert back.dtype == np.uint16 and np.array_equal(back, rgb16)
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == pic.icc_profile


def test_16bit_gray_png(tmp_path):
    g16 = (np.random.default_rng(1).random((16, 24)) * 65535).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(g16).save(path)
    pic = read_image(path)
    assert pic.gray and pic.bits == 16
    save_image(pic, tmp_path / "o.png", "png")
    with Image.open(tmp_path / "o.png") as im:
        assert np.array_equal(np.asarray(im).astype(np.uint16), g16)
    # An 8-bit format gets 8 bits.
    save_image(pic, tmp_path / "o.jpg", "jpg")
    with Image.open(tmp_path / "o.jpg") as im:
        assert im.mode == "L"


def test_cmyk_is_converted_with_a_warning(tmp_path):
    path = tmp_path / "c.jpg"
    Image.fromarray(natural_image(32, 32)).convert("CMYK").save(path)
    pic = read_image(path)
    assert not pic.gray and pic.rgb.shape == (32, 32, 3)
    assert any("CMYK" in w for w in pic.warnings)


@pytest.mark.parametrize("name,content,match", [
    ("empty.png", b"", "empty file"),
    ("text.jpg", b"this is not an image at all", "not an image file"),
    ("data.xyz", bytes(range(256)) * 4, "not an image file"),
])
def test_bad_files_give_one_line_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(natural_image(128, 128)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_image(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "out.png"

    class Boom(Exception):
        pass

    def failing_fsync(fd):
        raise Boom()

    monkeypatch.setattr("os.fsync", failing_fsync)
    with pytest.raises(Boom):
        write_atomic(target, b"partial data")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_picture_encodes_every_format(tmp_path):
    pic = Picture(natural_image(24, 40).astype(np.float32) / 255)
    for fmt in ("png", "jpg", "webp", "tiff"):
        save_image(pic, tmp_path / f"o.{fmt}", fmt)
        with Image.open(tmp_path / f"o.{fmt}") as im:
            assert im.size == (40, 24)
