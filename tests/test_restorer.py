import numpy as np
import pytest
from PIL import Image

from conftest import natural_image


def test_pil_rgb(restorer):
    img = Image.fromarray(natural_image(64, 80))
    out = restorer.restore(img)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (80, 64)


def test_pil_gray_and_rgba(restorer):
    gray = Image.fromarray(natural_image(64, 64)[..., 0], "L")
    assert restorer.restore(gray).mode == "L"
    rgba = Image.fromarray(np.dstack([natural_image(64, 64), np.full((64, 64), 77, np.uint8)]), "RGBA")
    out = restorer.restore(rgba)
    assert out.mode == "RGBA" and np.all(np.asarray(out)[..., 3] == 77)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_numpy_dtypes_and_shapes(restorer, dtype):
    base = natural_image(48, 64).astype(np.float64) / 255
    top = {np.uint8: 255, np.uint16: 65535, np.float32: 1}[dtype]
    arr = (base * top).astype(dtype)
    out = restorer.restore(arr)
    assert out.dtype == dtype and out.shape == arr.shape
    gray = restorer.restore(arr[..., 0])
    assert gray.shape == (48, 64)


def test_numpy_bad_shape(restorer):
    with pytest.raises(ValueError, match="array"):
        restorer.restore(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(TypeError):
        restorer.restore("not an image")
