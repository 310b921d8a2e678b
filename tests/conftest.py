import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """ONNX exports and other caches go to the test session's temporary folder, never ~/.cache/revamp."""
    os.environ["REVAMP_CACHE"] = str(tmp_path_factory.mktemp("cache"))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def require(available: bool, what: str) -> None:
    """Skip a test whose outside reference (../shared, a system tool) is missing; under CI
    (CI=true, set by .ci/run) fail instead, so a CI run cannot go quietly green without them."""
    if available:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing, and CI must run every test")
    pytest.skip(f"{what} is not available here")


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    require(path.exists(), f"{path} (../shared is beside the repo only on project machines)")
    return path


def natural_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-edges uint8 RGB test picture (compresses like a photo, unlike noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fy, fx, ph = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 128 + 70 * np.sin(yy * fy + ph) * np.cos(xx * fx)
    for _ in range(6):  # a few hard-edged rectangles
        y0, x0 = rng.integers(0, h - 8), rng.integers(0, w - 8)
        img[y0 : y0 + rng.integers(8, h // 2), x0 : x0 + rng.integers(8, w // 2)] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(folder: Path, count: int, h: int, w: int) -> Path:
    """A folder of `count` natural_image PNGs named 0.png, 1.png, ... (seeds 0..count-1)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(natural_image(h, w, seed=i)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="session")
def restorer():
    from revamp import Restorer

    return Restorer("default", device="cpu")
