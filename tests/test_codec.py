"""Reading how hard a file was compressed: JPEG tables, video quantiser maps, the pixel estimator."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from conftest import natural_image
from revamp.codec import estimate_jpeg_quality, ijg_table, read_jpeg_tables, read_video_qp
from videos import moving_frames


def _jpeg(img: np.ndarray, q: int | None, **kw) -> io.BytesIO:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", **({"quality": q} if q else {}), **kw)
    buf.seek(0)
    return buf


def test_jpeg_quality_read_from_the_file_is_the_quality_used():
    img = natural_image(64, 64)
    for q in range(1, 101):
        info = read_jpeg_tables(_jpeg(img, q))
        assert (info.quality, info.table_error) == (q, 0.0), q
    assert np.array_equal(read_jpeg_tables(_jpeg(img, 50)).luma, ijg_table(50))  # q50 = the standard table
    gray = read_jpeg_tables(_jpeg(img[..., 0], 35))
    assert gray.quality == 35 and gray.chroma is None


def test_non_ijg_tables_are_matched_to_the_nearest_quality():
    img = natural_image(64, 64)
    custom = [(ijg_table(40) + 1).reshape(-1).tolist(), ijg_table(40, chroma=True).reshape(-1).tolist()]
    info = read_jpeg_tables(_jpeg(img, None, qtables=custom))
    assert info.quality in (39, 40, 41) and 0 < info.table_error <= 1.5


def _encode(path, codec: str, options: dict | None = None, q: int | None = None):
    frames = moving_frames(6, 64, 96)
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv420p"
        if options:
            s.codec_context.options = options
        if q is not None:
            s.codec_context.qmin = s.codec_context.qmax = q
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 25)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return path


def test_h264_qp_maps_equal_the_constant_qp(tmp_path):
    # ipratio/pbratio 1 and no adaptive quantisation: x264 then really uses one QP everywhere.
    path = _encode(tmp_path / "a.mp4", "libx264", {"qp": "33", "x264-params": "ipratio=1:pbratio=1:aq-mode=0"})
    frames = list(read_video_qp(path))
    assert len(frames) == 6 and frames[0].pict_type == "I"
    assert {f.pict_type for f in frames} >= {"I", "P"}
    for f in frames:
        assert f.qp_map.shape == (4, 6) and np.all(f.qp_map == 33)


def test_mpeg2_quantiser_maps_equal_the_constant_qscale(tmp_path):
    frames = list(read_video_qp(_encode(tmp_path / "a.mpg", "mpeg2video", q=7)))
    maps = [f.qp_map for f in frames if f.qp_map is not None]
    assert len(frames) == 6 and len(maps) >= 5
    assert all(np.all(m == 2 * 7) for m in maps)  # quantiser_scale = 2 x qscale (linear q_scale_type)


def test_hevc_has_no_exported_quantisers(tmp_path):
    path = _encode(tmp_path / "a.mp4", "libx265", {"x265-params": "qp=30:log-level=none"})
    with pytest.raises(ValueError, match="not hevc"):
        list(read_video_qp(path))


@pytest.mark.parametrize("q", [10, 30, 50, 75])
def test_pixel_estimator_reads_the_quality_back_from_decoded_pixels(q):
    img = natural_image(256, 256, seed=2)
    decoded = np.asarray(Image.open(_jpeg(img, q)).convert("RGB"))  # e.g. a PNG screenshot of the JPEG
    assert abs(estimate_jpeg_quality(decoded) - q) <= 3
