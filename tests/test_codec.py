"""Reading how hard a file was compressed: JPEG tables, video quantiser maps, the pixel estimator."""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import natural_image
from PIL import Image
from videos import moving_frames

from revamp.codec import (
    BLIND,
    CodecHint,
    condition_value,
    estimate_jpeg_quality,
    h26x_step,
    hint_for_image,
    hint_for_video_frame,
    ijg_table,
    jpeg_step,
    read_jpeg_tables,
    read_video_qp,
)
from revamp.data.degrade import frame_step


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


def _encode(path, codec: str, options: dict | None = None, q: int | None = None, n: int = 6, h: int = 64, w: int = 96):
    frames = moving_frames(n, h, w)
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
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


def _hevc_frame_qps(path) -> list[tuple[str, float | None]]:
    """(picture type, slice QP as the hint tells it) of each frame, as `revamp video` decodes them."""
    from revamp.video.io import DecodeReport, decode_frames

    with av.open(str(path)) as container:
        return [(av.video.frame.PictureType(int(f.pict_type)).name, hint_for_video_frame(f, "hevc"))
                for f in decode_frames(container, DecodeReport(), export_qp=True)]


# x265 in --qp mode: I frames at QP-3, P at QP, the B frames of its B pyramid at QP+1 (references)
# and QP+2 (ipratio 1.4, pbratio 1.3). Medium's weighted prediction puts a prediction weight table
# in every P slice header, `slices` several slices in a picture, veryslow long inter-predicted
# reference picture sets; an Annex B stream (.hevc) has no hvcC record.
@pytest.mark.parametrize("suffix, params, preset", [(".mp4", "keyint=8", "medium"), (".mkv", "slices=3:keyint=8", "veryslow"),
                                                    (".hevc", "bframes=0", "ultrafast")])
def test_hevc_slice_qps_are_read_from_the_bitstream(tmp_path, suffix, params, preset):
    path = _encode(tmp_path / f"a{suffix}", "libx265", {"preset": preset, "x265-params": f"qp=32:{params}:log-level=none"}, n=20, h=96, w=128)
    read = _hevc_frame_qps(path)
    assert len(read) == 20 and all(h.steps is not None and h.steps.shape == (12, 16) for _, h in read)
    qps = {(kind, round(float(6 * np.log2(h.steps[0, 0] / h26x_step(0))), 3)) for kind, h in read}
    expected = {("I", 29.0), ("P", 32.0)} | ({("B", 33.0), ("B", 34.0)} if "bframes=0" not in params else set())
    assert qps == expected


def test_damaged_hevc_headers_leave_the_picture_blind():
    from revamp.hevc import HevcQuantisers

    reader = HevcQuantisers()
    assert reader.picture_qp(b"") is None and reader.picture_qp(b"\x00\x00\x00\x03\x26\x01\xff") is None  # no parameter sets
    rng = np.random.default_rng(0)
    for _ in range(200):  # random bytes: no exception, and a QP (if any) in H.265's range
        qp = reader.picture_qp(rng.integers(0, 256, int(rng.integers(1, 80)), dtype=np.uint8).tobytes())
        assert qp is None or 0 <= qp <= 51


@pytest.mark.parametrize("q", [10, 30, 50, 75])
def test_pixel_estimator_reads_the_quality_back_from_decoded_pixels(q):
    img = natural_image(256, 256, seed=2)
    decoded = np.asarray(Image.open(_jpeg(img, q)).convert("RGB"))  # e.g. a PNG screenshot of the JPEG
    assert abs(estimate_jpeg_quality(decoded) - q) <= 3


def test_frame_steps_of_training_equal_what_x264_reports(tmp_path):
    # Training tells a codec-aware model frame_step(); at run time the model reads the decoder's
    # maps. x264 in --qp mode with its default ipratio/pbratio: I at QP-3, B at QP+2.
    path = _encode(tmp_path / "a.mp4", "libx264", {"qp": "33", "bframes": "2", "g": "12"})
    frames = list(read_video_qp(path))
    assert {f.pict_type for f in frames} == {"I", "P", "B"}
    for f in frames:
        assert np.all(h26x_step(f.qp_map) == frame_step("h264", 33, f.pict_type)), f.pict_type


def test_round_trip_steps_are_the_decoders_own_b_pyramid_included():
    # x264 codes the reference B frame of a B pyramid at QP+1, between its P and B frames: the
    # steps training and `revamp eval --video` tell the model are what the decoder exports, as
    # `revamp video` reads them, not the I/P/B rule.
    from revamp.data.degrade import video_roundtrip

    steps: list[float] = []
    video_roundtrip(moving_frames(12, 96, 128), "h264", 33, steps=steps)
    qps = np.round(6 * np.log2(np.array(steps) / 0.625), 3)
    assert len(qps) == 12 and set(qps) == {30, 33, 34, 35}
    steps = []
    video_roundtrip(moving_frames(6, 48, 64), "mpeg2", 6, steps=steps)
    assert steps == [12.0] * 6


def test_a_process_forked_after_frame_conversions_still_converts():
    """DataLoader workers are forked after the trainer made its validation clips: a conversion that
    left FFmpeg's scaler thread pool behind (PyAV 18.1.1's default) would hang every worker."""
    import multiprocessing

    from revamp.data.degrade import video_roundtrip

    frames = moving_frames(4, 48, 64)
    video_roundtrip(frames, "h264", 30, steps=[])
    with multiprocessing.get_context("fork").Pool(1) as pool:
        out = pool.apply_async(video_roundtrip, (frames, "h264", 30)).get(timeout=120)
    assert len(out) == 4 and out[0].shape == (48, 64, 3)


def test_every_frame_conversion_in_the_package_keeps_to_one_thread():
    """The test above guards one path; any PyAV conversion in the package without ``threads=1``
    (reformat, or to_ndarray to a format) could bring the hang back in DataLoader workers, which
    are forked so that they share the decoded training pictures instead of copying them."""
    import ast
    from pathlib import Path

    import revamp

    calls, missing = 0, []
    for path in Path(revamp.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            keywords = {k.arg for k in node.keywords}
            if node.func.attr == "reformat" or (node.func.attr == "to_ndarray" and "format" in keywords):
                calls += 1
                if "threads" not in keywords:
                    missing.append(f"{path.name}:{node.lineno}")
    assert calls >= 4 and not missing


def test_mpeg4_quantiser_maps_are_read_too(tmp_path):
    maps = [f.qp_map for f in read_video_qp(_encode(tmp_path / "a.avi", "mpeg4", q=6)) if f.qp_map is not None]
    assert len(maps) >= 5 and all(np.all(m == 12) for m in maps)
    assert frame_step("mpeg4", 6, "P") == 12


def test_video_frame_hints_follow_the_macroblock_map(tmp_path):
    path = _encode(tmp_path / "a.mp4", "libx264", {"qp": "30", "x264-params": "ipratio=1:pbratio=1:aq-mode=0"})
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.codec_context.options = {"export_side_data": "venc_params"}
        hints = [hint_for_video_frame(f, "h264") for f in c.decode(stream)]
    assert all(h.steps is not None and h.block == 16 for h in hints)
    planes = hints[0].planes(0, 64, 0, 96)
    assert planes.shape == (2, 64, 96)
    assert np.allclose(planes[0], condition_value(h26x_step(30))) and np.all(planes[1] == 1)
    with av.open(str(path)) as c:  # a decoder opened without export_side_data: blind
        assert hint_for_video_frame(next(c.decode(video=0)), "h264") is BLIND


def test_hint_planes_crop_windows_and_scale_with_strength():
    steps = np.arange(12, dtype=np.float32).reshape(3, 4) * 10 + 2
    hint = CodecHint(steps, 16, "test")
    window = hint.planes(10, 40, 20, 60)
    assert window.shape == (2, 30, 40)
    expected = np.repeat(np.repeat(condition_value(steps), 16, 0), 16, 1)[10:40, 20:60]
    assert np.array_equal(window[0], expected)
    edge = hint.planes(40, 50, 60, 70)  # past the map (MPEG-2 pads to 16): the last block repeats
    assert np.allclose(edge[0], condition_value(steps[-1, -1]))
    weaker, stronger = hint.planes(0, 48, 0, 64, 0.5)[0], hint.planes(0, 48, 0, 64, 2.0)[0]
    assert np.all(weaker <= window.max()) and np.all(stronger >= hint.planes(0, 48, 0, 64)[0]) and stronger.mean() > weaker.mean()
    assert np.all(hint.planes(0, 48, 0, 64, 0.0)[0] == 0)  # strength 0: told "not compressed"
    assert not BLIND.planes(0, 8, 0, 8).any()  # blind: both planes zero


def test_image_hints_tables_then_pixels_then_blind(tmp_path):
    img = natural_image(256, 256, seed=4)
    src = tmp_path / "a.jpg"
    src.write_bytes(_jpeg(img, 25).getvalue())
    hint = hint_for_image(src, None)
    assert "quality 25" in hint.source and hint.steps.shape == (32, 32) and np.all(hint.steps == jpeg_step(ijg_table(25)))
    decoded = np.asarray(Image.open(src).convert("RGB"))
    png = tmp_path / "a.png"
    Image.fromarray(decoded).save(png)
    estimated = hint_for_image(png, decoded.astype(np.float32) / 255)
    assert estimated.source.startswith("pixel estimate") and estimated.steps is not None
    assert abs(int(estimated.source.split()[-1].rstrip(")")) - 25) <= 3
    assert hint_for_image(None, img) is BLIND  # never compressed: nothing to find


@pytest.mark.parametrize("seed", range(4))
def test_pixel_estimator_finds_nothing_in_clean_pictures(seed):
    # Small coefficients fit any large step (cos ~ 1): such steps must not count.
    assert estimate_jpeg_quality(natural_image(256, 256, seed=seed)) >= 95
