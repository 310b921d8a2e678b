import numpy as np
import pytest
import torch
from conftest import natural_image
from PIL import Image


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


def test_compiled_network_gives_the_eager_output_and_falls_back_when_compiling_fails(tmp_path, monkeypatch):
    import shutil

    import revamp.inference.restorer as restorer_module
    from revamp import Restorer
    from revamp.models import UNetConfig, UNetGenerator
    from revamp.models.files import save_model

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8))
    for p in model.to_rgb.parameters():  # a non-zero output layer, so the network shows in the output
        torch.nn.init.normal_(p, std=0.1)
    path = tmp_path / "tiny.safetensors"
    save_model(model, path, name="tiny", task="test", recipe={})
    rgb = natural_image(64, 96).astype(np.float32) / 255
    eager = Restorer(str(path), device="cpu").restore_rgb(rgb)
    assert np.abs(eager - rgb).max() > 1e-3
    if shutil.which("g++") or shutil.which("c++"):  # inductor's CPU code generation needs a C++ compiler
        compiled = Restorer(str(path), device="cpu", compile=True)
        assert compiled.model is not compiled.eager_model
        assert np.abs(compiled.restore_rgb(rgb) - eager).max() < 1e-4

    def broken_compiler(model):
        def run(x):
            raise RuntimeError("no working C++ compiler\ndetails")
        return run

    monkeypatch.setattr(restorer_module, "compile_for_inference", broken_compiler)
    fallback = Restorer(str(path), device="cpu", compile=True)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(RuntimeError: no working C\+\+ compiler\); running uncompiled"):
        out = fallback.restore_rgb(rgb)
    assert np.array_equal(out, eager) and fallback.model is fallback.eager_model


def test_restoring_loads_no_training_evaluation_or_study_code():
    """The arrows point one way: the product (API, image and video restoration) never imports
    revamp.train, revamp.evaluation or revamp.study, so restoring pays for none of them."""
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from revamp import Restorer\n"
            "from revamp.video.job import restore_frames\n"
            "r = Restorer('default', backend='auto')\n"
            "r.restore(np.zeros((40, 40, 3), np.uint8))\n"
            "print(' '.join(m for m in sys.modules if m.startswith(('revamp.train', 'revamp.evaluation', 'revamp.study'))) or 'none')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["none"]


def test_self_ensemble_maps_every_view_back_and_moves_the_codec_blocks_with_the_pixels(restorer, monkeypatch):
    """--ensemble: eight flips/rotations of the picture (padded to 16 px so the 8x8 grid stays on
    the grid), each restored and mapped back, averaged. A model that returns its input gives the
    input back; the codec hint of each view is the hint of the picture, transformed alike."""
    from revamp import Restorer
    from revamp.codec import CodecHint
    from revamp.inference.restorer import _dihedral

    rgb = natural_image(37, 50).astype(np.float32) / 255
    identity = Restorer("default", strength=0.0, ensemble=True)  # strength 0: the network's correction is dropped
    assert np.allclose(identity.restore_rgb(rgb.copy()), rgb, atol=1e-6)

    steps = np.arange(5 * 7, dtype=np.float32).reshape(5, 7) + 1  # one step per 8x8 block, all different
    hint = CodecHint(steps, 8, "test")
    seen = []
    ensemble = Restorer("default", ensemble=True)
    monkeypatch.setattr(ensemble, "_restore_once", lambda view, on_tile, inplace, told, n: seen.append((view.copy(), told)) or view)
    out = ensemble.restore_rgb(rgb.copy(), hint=hint)
    assert out.shape == rgb.shape and np.allclose(out, rgb, atol=1e-6) and len(seen) == 8
    padded = np.pad(rgb, ((0, 11), (0, 14), (0, 0)), mode="edge")
    planes = CodecHint(np.pad(steps, ((0, 1), (0, 1)), mode="edge"), 8, "test").planes(0, 48, 0, 64)[0]
    for k, (view, told) in enumerate(seen):
        assert np.array_equal(view, _dihedral(padded, k))
        assert np.array_equal(told.planes(0, *view.shape[:1], 0, view.shape[1])[0], _dihedral(planes, k))
    assert ensemble.tile_count(50, 37) == 8 * restorer.tile_count(64, 48)

    # Each view is restored in place (as _restore_once does for a float32 picture): no view may be
    # the padded picture itself, or the views after it would restore a restoration.
    def halve_in_place(view, on_tile, inplace, told, n):
        seen.append(view.copy())
        view *= 0.5
        return view

    seen.clear()
    monkeypatch.setattr(ensemble, "_restore_once", halve_in_place)
    out = ensemble.restore_rgb(rgb.copy(), hint=hint)
    assert all(np.array_equal(view, _dihedral(padded, k)) for k, view in enumerate(seen))
    assert np.allclose(out, rgb * 0.5, atol=1e-6)
