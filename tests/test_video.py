"""`revamp video`: streams, timestamps, colour, resume and damaged inputs, on clips made on the fly."""
from __future__ import annotations

import itertools
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import natural_image
from videos import decoded_rgb, frame_times, make_video, moving_frames, packet_digests, y_planes

from revamp.cli import main
from revamp.inference.restorer import Restorer
from revamp.metrics.fidelity import psnr
from revamp.video.io import VideoError
from revamp.video.job import VideoOptions, restore_video


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    """An untrained generator: exactly the identity, so colour and timing checks see only our I/O."""
    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator

    path = tmp_path_factory.mktemp("model") / "identity.safetensors"
    save_model(UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8)), path, name="identity", task="test", recipe={}, half=False)
    return Restorer(str(path), device="cpu")


def _run(src, dst, restorer, **kw):
    opts = {k: kw.pop(k) for k in list(kw) if k in VideoOptions.__dataclass_fields__}
    return restore_video(src, dst, restorer, VideoOptions(**opts), quiet=True, **kw)


def test_streams_timestamps_and_metadata_are_kept(tmp_path, identity):
    src = make_video(tmp_path / "in.mkv", n=20)
    report = _run(src, tmp_path / "out.mkv", identity, segment_frames=8)
    out = tmp_path / "out.mkv"
    assert report.frames == 20 and report.restored_frames == 20 and report.damage is None
    assert frame_times(out) == frame_times(src)
    assert packet_digests(out, "audio") == packet_digests(src, "audio") != []  # bit-identical, not re-encoded
    assert packet_digests(out, "subtitles") == packet_digests(src, "subtitles") != []
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "revamp test clip"
        assert c.streams.video[0].codec_context.name == "h264"
    assert not list(tmp_path.glob(".*")), "work folder and temporary files are removed"


def test_variable_frame_rate_mp4_keeps_every_timestamp(tmp_path, identity):
    src = make_video(tmp_path / "vfr.mp4", n=18, vfr=True)
    _run(src, tmp_path / "out.mp4", identity, segment_frames=7)
    times = frame_times(src)
    assert len(set(np.round(np.diff(times), 3))) == 2, "the test clip really is VFR"
    assert frame_times(tmp_path / "out.mp4") == pytest.approx(times, abs=1e-6)
    assert packet_digests(tmp_path / "out.mp4", "subtitles") == packet_digests(src, "subtitles") != []


def _decode_tagged(path, colorspace=None, color_range=None):
    """RGB frames decoded with the file's own (or the given) matrix and range, plus the tags."""
    names = {1: "itu709", 5: "itu601", 6: "smpte170m"}
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    tags = (frames[0].colorspace, frames[0].color_range)
    space, rng = colorspace or tags[0], color_range or tags[1]
    rgb = [f.reformat(format="rgb24", src_colorspace=names[space], src_color_range="JPEG" if rng == 2 else "MPEG", threads=1).to_ndarray()
           for f in frames]
    return rgb, tags


@pytest.mark.parametrize("colorspace,full_range", [(1, True), (6, False)], ids=["bt709-full", "bt601-limited"])
def test_colour_matrix_and_range_round_trip(tmp_path, identity, colorspace, full_range):
    frames = moving_frames(6, 64, 96, seed=3)
    src = make_video(tmp_path / "in.mkv", frames, colorspace=colorspace, full_range=full_range, audio=False, subtitles=False,
                     options={"crf": "4"})
    _run(src, tmp_path / "out.mkv", identity, quality=4, stabilize=0.0)
    got, tags = _decode_tagged(tmp_path / "out.mkv")
    assert tags == (colorspace, 2 if full_range else 1)
    source, _ = _decode_tagged(src)
    err_in = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(source, frames)])
    err_out = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(got, frames)])
    assert err_out < err_in + 1.5, (err_in, err_out)
    # The check can fail: reading the output with the other matrix or range is clearly worse.
    wrong, _ = _decode_tagged(tmp_path / "out.mkv", colorspace=6 if colorspace == 1 else 1, color_range=1 if full_range else 2)
    err_wrong = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(wrong, frames)])
    assert err_wrong > err_out + 2


def test_rotation_and_sample_aspect_ratio_are_kept(tmp_path, identity):
    src = make_video(tmp_path / "in.mp4", n=4, rotation=90, sar=Fraction(16, 11), codec="mpeg2video", audio=False, subtitles=False)
    _run(src, tmp_path / "out.mp4", identity)
    with av.open(str(tmp_path / "out.mp4")) as c:
        stream = c.streams.video[0]
        assert stream.sample_aspect_ratio == Fraction(16, 11)
        assert next(c.decode(stream)).rotation == 90


@pytest.mark.parametrize("codec", ["mpeg2video", "mpeg4", "libx265"])
def test_archive_codecs_and_odd_sizes(tmp_path, identity, codec):
    src = make_video(tmp_path / "in.mkv", n=6, h=58, w=70, codec=codec, audio=False, subtitles=False)
    report = _run(src, tmp_path / "out.mkv", identity, codec="ffv1")
    out = decoded_rgb(tmp_path / "out.mkv")
    assert report.frames == 6 and len(out) == 6 and out[0].shape == (58, 70, 3)


def test_deinterlace_keeps_frame_count(tmp_path, identity):
    src = make_video(tmp_path / "in.mkv", n=6, audio=False, subtitles=False)
    _run(src, tmp_path / "out.mkv", identity, deinterlace="bwdif")
    assert frame_times(tmp_path / "out.mkv") == frame_times(src)


class _Interrupt:
    """Wraps a restorer and raises KeyboardInterrupt after ``limit`` frames (a user's Ctrl-C)."""

    def __init__(self, restorer, limit):
        self.inner, self.limit, self.calls = restorer, limit, 0
        self.scale, self.model_path = restorer.scale, restorer.model_path
        self.strength, self.codec_aware, self.neighbours = restorer.strength, restorer.codec_aware, restorer.neighbours
        self.config = restorer.config
        self.blind_codecs, self.ensemble, self.exact_video_rgb = restorer.blind_codecs, restorer.ensemble, restorer.exact_video_rgb
        self.stabilize, self.hint_scales = restorer.stabilize, restorer.hint_scales

    def restore_rgb(self, rgb, hint=None, neighbours=None):
        self.calls += 1
        if self.calls > self.limit:
            raise KeyboardInterrupt
        return self.inner.restore_rgb(rgb, hint=hint, neighbours=neighbours)


def test_resume_redoes_nothing_and_matches_an_uninterrupted_run(tmp_path, restorer):
    # FFV1 (lossless) so that the check sees our pipeline exactly: libx264's bitstream is not
    # reproducible run to run inside one process (see test_resume_with_h264).
    src = make_video(tmp_path / "in.mkv", n=20)
    _run(src, tmp_path / "full.mkv", restorer, segment_frames=6, codec="ffv1")
    with pytest.raises(KeyboardInterrupt):
        _run(src, tmp_path / "out.mkv", _Interrupt(restorer, 14), segment_frames=6, codec="ffv1")
    assert not (tmp_path / "out.mkv").exists(), "no half-written output"
    work = tmp_path / ".out.mkv.revamp-work"
    assert sorted(p.name for p in work.glob("*.seg")) == ["segment-000000.seg", "segment-000001.seg"]
    report = _run(src, tmp_path / "out.mkv", restorer, segment_frames=6, codec="ffv1", resume=True)
    assert report.restored_frames == 8 and report.frames == 20
    a, b = decoded_rgb(tmp_path / "out.mkv"), decoded_rgb(tmp_path / "full.mkv")
    assert len(a) == len(b) == 20 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert frame_times(tmp_path / "out.mkv") == frame_times(src)


def test_resume_with_h264(tmp_path, identity):
    src = make_video(tmp_path / "in.mp4", n=16)
    _run(src, tmp_path / "full.mp4", identity, segment_frames=5)
    with pytest.raises(KeyboardInterrupt):
        _run(src, tmp_path / "out.mp4", _Interrupt(identity, 7), segment_frames=5)
    report = _run(src, tmp_path / "out.mp4", identity, segment_frames=5, resume=True)
    assert report.restored_frames == 11
    assert frame_times(tmp_path / "out.mp4") == frame_times(tmp_path / "full.mp4") == frame_times(src)
    a, b = decoded_rgb(tmp_path / "out.mp4"), decoded_rgb(tmp_path / "full.mp4")
    assert min(psnr(x, y) for x, y in zip(a, b)) > 35  # the same frames, up to encoder decisions
    assert packet_digests(tmp_path / "out.mp4", "audio") == packet_digests(src, "audio")


def test_joined_segments_get_dts_that_rise_strictly_and_never_pass_pts():
    """Segments encoded separately differ in B-frame delay (here 2, then 3, then a lone frame); a
    dts nudged by one tick at a boundary was lost when the muxer rescaled it (EINVAL from MP4)."""
    from types import SimpleNamespace

    from revamp.video.job import _DecodingTimes, _reorder_depth

    segments = [[SimpleNamespace(pts=t * 512) for t in order] for order in ([0, 3, 1, 2, 4], [5, 9, 7, 6, 8], [10])]
    assert [_reorder_depth([p.pts for p in seg]) for seg in segments] == [2, 3, 0]
    times = _DecodingTimes(3)
    for seg in segments:
        times.assign(seg)
    packets = [p for seg in segments for p in seg]
    assert all(a.dts < b.dts for a, b in itertools.pairwise(packets))
    assert all(p.dts <= p.pts for p in packets)
    assert packets[0].dts == -3 * 512


def test_resume_refuses_a_changed_job(tmp_path, identity):
    src = make_video(tmp_path / "in.mkv", n=8, audio=False, subtitles=False)
    with pytest.raises(KeyboardInterrupt):
        _run(src, tmp_path / "out.mkv", _Interrupt(identity, 5), segment_frames=4)
    with pytest.raises(VideoError, match="codec changed"):
        _run(src, tmp_path / "out.mkv", identity, segment_frames=4, codec="h265", resume=True)


def test_ensemble_restores_every_frame_from_its_eight_views_and_a_job_keeps_it_on_resume(tmp_path, identity, monkeypatch):
    src = make_video(tmp_path / "in.mkv", n=6, audio=False, subtitles=False)
    plain = tmp_path / "plain.mkv"
    assert main(["video", str(src), "-o", str(plain), "--codec", "ffv1", "--model", "video", "--no-stabilize", "-q"]) == 0
    views = []
    ensemble = Restorer._restore_ensemble
    monkeypatch.setattr(Restorer, "_restore_ensemble", lambda self, *a: views.append(1) or ensemble(self, *a))
    x8 = tmp_path / "x8.mkv"
    assert main(["video", str(src), "-o", str(x8), "--codec", "ffv1", "--model", "video", "--no-stabilize", "--ensemble", "-q"]) == 0
    assert len(views) == 6  # once per frame
    a, b = decoded_rgb(plain), decoded_rgb(x8)
    assert len(a) == len(b) == 6 and frame_times(x8) == frame_times(src)
    assert any(not np.array_equal(p, q) for p, q in zip(a, b))
    assert 0 < np.mean([np.abs(p.astype(int) - q).mean() for p, q in zip(a, b)]) < 2  # the same restoration, averaged
    with pytest.raises(KeyboardInterrupt):  # a job started without the ensemble is not finished with it
        _run(src, tmp_path / "out.mkv", _Interrupt(identity, 5), segment_frames=4)
    with pytest.raises(VideoError, match="ensemble changed"):
        _run(src, tmp_path / "out.mkv", Restorer(str(identity.model_path), device="cpu", ensemble=True), segment_frames=4, resume=True)


def test_ensemble_moves_a_multi_frame_models_neighbours_with_each_view(tmp_path, multiframe, monkeypatch):
    """--ensemble with a multi-frame model: each of the eight views is restored with the neighbour
    planes padded, flipped and rotated as the frame is; `revamp video` restores every frame so,
    with its real neighbours."""
    from revamp.inference.restorer import _dihedral
    from revamp.video.neighbours import still_planes

    ensemble = Restorer(str(multiframe.model_path), device="cpu", ensemble=True)
    rgb = natural_image(37, 50).astype(np.float32) / 255
    planes = np.random.default_rng(0).random(still_planes(rgb, 1, True).shape, dtype=np.float32)
    seen = []
    monkeypatch.setattr(ensemble, "_restore_once", lambda view, on_tile, inplace, told, n: seen.append((view.copy(), n)) or view)
    out = ensemble.restore_rgb(rgb.copy(), neighbours=planes)
    assert np.allclose(out, rgb, atol=1e-6) and len(seen) == 8
    padded_rgb = np.pad(rgb, ((0, 11), (0, 14), (0, 0)), mode="edge")
    padded = np.pad(planes, ((0, 0), (0, 11), (0, 14)), mode="edge")
    for k, (view, n) in enumerate(seen):
        assert np.array_equal(view, _dihedral(padded_rgb, k)) and n.flags.c_contiguous
        assert np.array_equal(n, np.stack([_dihedral(p, k) for p in padded]))
    monkeypatch.undo()

    src = make_video(tmp_path / "in.mkv", n=3, audio=False, subtitles=False)
    plain, x8 = tmp_path / "plain.mkv", tmp_path / "x8.mkv"
    args = ["--codec", "ffv1", "--model", str(multiframe.model_path), "--no-stabilize", "-q"]
    assert main(["video", str(src), "-o", str(plain), *args]) == 0
    told = []
    restore = Restorer._restore_ensemble

    def spy(self, rgb, on_tile, hint, neighbours):
        told.append(neighbours is not None)
        return restore(self, rgb, on_tile, hint, neighbours)

    monkeypatch.setattr(Restorer, "_restore_ensemble", spy)
    assert main(["video", str(src), "-o", str(x8), *args, "--ensemble"]) == 0
    assert told == [True] * 3 and frame_times(x8) == frame_times(src)
    a, b = decoded_rgb(plain), decoded_rgb(x8)
    assert len(a) == len(b) == 3 and any(not np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("fmt, space, full", [("yuv420p", "smpte170m", False), ("yuv444p", "itu709", False),
                                              ("yuvj420p", "smpte170m", True), ("yuv420p10le", "bt2020", False), ("yuv422p10le", "itu709", False)])
def test_decoded_frames_become_rgb_without_bias_or_lost_luma(fmt, space, full):
    """frame_to_rgb converts planar Y'CbCr by the exact matrix: no shift in level (swscale's fast
    path, as PyAV calls it, makes its RGB about 1.3 levels darker) and the Y of the RGB is the
    frame's Y plane, but for rounding."""
    from revamp.video.io import RANGE_FULL, RANGE_LIMITED, SPACE_BT709, SPACE_BT2020, SPACE_SMPTE170M, VideoInfo, frame_to_rgb

    src = natural_image(96, 128, seed=4)
    frame = av.VideoFrame.from_ndarray(src, format="rgb24").reformat(format=fmt, dst_colorspace=space,
                                                                     dst_color_range="JPEG" if full else "MPEG", threads=1)
    code = {"smpte170m": SPACE_SMPTE170M, "itu709": SPACE_BT709, "bt2020": SPACE_BT2020}[space]
    info = VideoInfo(time_base=Fraction(1, 25), rate=None, frames=0, duration_s=None, colorspace=code,
                     color_range=RANGE_FULL if full else RANGE_LIMITED, color_primaries=1, color_trc=1, sample_aspect_ratio=None, rotation=0)
    rgb = frame_to_rgb(frame, info).astype(np.float64)
    if not full:  # (swscale's own full-range encoding scales chroma otherwise than H.273 says: Y only)
        assert np.all(np.abs((rgb - src).reshape(-1, 3).mean(axis=0)) < 0.3)  # no shift in level
        swscale = frame.reformat(format="rgb24", src_colorspace=space, src_color_range="MPEG", threads=1).to_ndarray()
        assert np.abs(rgb - src).mean() < np.abs(swscale.astype(np.float64) - src).mean() + 0.3  # chroma as coarse as the frame's
    kr, kb = {"smpte170m": (0.299, 0.114), "itu709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}[space]
    y = (kr * rgb[..., 0] + (1 - kr - kb) * rgb[..., 1] + kb * rgb[..., 2]) / 255
    bits = 10 if "10" in fmt else 8
    plane = np.frombuffer(frame.planes[0], np.dtype("<u2") if bits > 8 else np.uint8,
                          count=frame.planes[0].line_size // (2 if bits > 8 else 1) * 96).reshape(96, -1)[:, :128].astype(np.float64)
    plane = plane / (2**bits - 1) if full else (plane / 2 ** (bits - 8) - 16) / 219
    assert np.abs(y - plane).max() < 1.5 / 219  # rounding to 8-bit RGB only


def test_truncated_input_restores_what_decodes_and_reports_it(tmp_path, identity, capsys):
    src = make_video(tmp_path / "in.mkv", n=30)
    data = src.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    code = main(["video", str(tmp_path / "cut.mkv"), "-o", str(tmp_path / "out.mkv"), "--model", str(identity.model_path), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "damaged input" in err and "Traceback" not in err
    assert 0 < len(decoded_rgb(tmp_path / "out.mkv")) < 30


@pytest.mark.parametrize("case", ["no-video", "not-a-video", "missing", "exists", "bad-container"])
def test_bad_inputs_give_one_line_errors(tmp_path, identity, capsys, case):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    extra = []
    if case == "no-video":
        with av.open(str(src), "w") as c:
            a = c.add_stream("aac", rate=48000)
            for p in a.encode(None):
                c.mux(p)
    elif case == "not-a-video":
        src.write_text("hello")
    elif case == "exists":
        make_video(src, n=2, audio=False, subtitles=False)
        out.write_bytes(b"mine")
    elif case == "bad-container":
        make_video(src, n=2, audio=False, subtitles=False)
        out = tmp_path / "out.avi"
    code = main(["video", str(src), "-o", str(out), "--model", str(identity.model_path), "-q", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("revamp: error:"), err
    if case == "exists":
        assert out.read_bytes() == b"mine"
    elif case != "missing":
        assert not out.exists()


@pytest.mark.parametrize("flow_lines", [None, 48])  # 48: flow measured at half size, as 720p is
def test_temporal_metrics_see_flicker_and_the_stabiliser_removes_it(flow_lines):
    from revamp.metrics.temporal import tof, warping_error
    from revamp.video.stabilize import TemporalStabilizer, stabilize_clip

    refs = moving_frames(8, 96, 128, seed=4)
    rng = np.random.default_rng(0)
    # Per-frame "restorations" that flicker: independent noise on every frame.
    noisy = [np.clip(r.astype(np.float32) / 255 + rng.normal(0, 0.03, r.shape), 0, 1).astype(np.float32) for r in refs]
    to8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    assert warping_error(refs, refs) < 0.05  # the references themselves are consistent
    flicker = warping_error([to8(x) for x in noisy], refs)
    assert flicker > 1.0
    causal = [to8(x) for x in stabilize_clip(TemporalStabilizer(flow_lines=flow_lines, look_ahead=0), refs, noisy)]
    stable = [to8(x) for x in stabilize_clip(TemporalStabilizer(flow_lines=flow_lines), refs, noisy)]
    assert len(stable) == len(refs)
    assert warping_error(stable, refs) < 0.6 * flicker
    assert np.mean([psnr(s, r) for s, r in zip(stable, refs)]) > np.mean([psnr(to8(x), r) for x, r in zip(noisy, refs)])
    # Looking ahead as well as back averages more frames: closer to the truth than the past alone.
    assert np.mean([psnr(s, r) for s, r in zip(stable, refs)]) > np.mean([psnr(s, r) for s, r in zip(causal, refs)]) + 0.3
    assert tof(refs, refs) == 0.0


def test_the_stabiliser_looks_ahead_but_never_across_a_scene_cut():
    from revamp.video.stabilize import LOOK_AHEAD, TemporalStabilizer, stabilize_clip

    shot, other = moving_frames(4, 96, 128, seed=4), moving_frames(3, 96, 128, seed=9)
    clip = shot + other
    rng = np.random.default_rng(2)
    raws = [np.clip(f / np.float32(255) + rng.normal(0, 0.03, f.shape), 0, 1).astype(np.float32) for f in clip]
    whole = stabilize_clip(TemporalStabilizer(), clip, raws)
    assert len(whole) == len(clip)
    # Each shot comes out as if it were a clip of its own: nothing crosses the cut, either way.
    for part, out in [(slice(0, 4), whole[:4]), (slice(4, 7), whole[4:])]:
        alone = stabilize_clip(TemporalStabilizer(), clip[part], raws[part])
        assert all(np.array_equal(a, b) for a, b in zip(out, alone))
    # Within a shot the next frames count: the first frame changes with what follows it.
    changed = raws[:LOOK_AHEAD] + [np.clip(raws[LOOK_AHEAD] + 0.05, 0, 1)] + raws[LOOK_AHEAD + 1 : 4]
    assert not np.array_equal(stabilize_clip(TemporalStabilizer(), shot, changed)[0], whole[0])
    beyond = raws[: LOOK_AHEAD + 1] + [np.clip(raws[LOOK_AHEAD + 1] + 0.05, 0, 1)]
    assert np.array_equal(stabilize_clip(TemporalStabilizer(), shot, beyond)[0], whole[0])  # but no further than LOOK_AHEAD


def test_a_frame_leans_more_on_a_finer_quantised_neighbour():
    from revamp.video.stabilize import MAX_WEIGHT, TemporalStabilizer, stabilize_clip

    still = [natural_image(64, 96, seed=3)] * 2  # a static shot: full confidence everywhere
    raws = [np.full((64, 96, 3), 0.4, np.float32), np.full((64, 96, 3), 0.6, np.float32)]
    fine, coarse = 0.01, 0.02  # frame 0 quantised twice as finely as frame 1

    def pulled(power):  # how far each output moved towards the other frame's restoration
        out = stabilize_clip(TemporalStabilizer(0.6, quality_power=power), still, [r.copy() for r in raws], [fine, coarse])
        return [abs(float(o.mean()) - float(r.mean())) / 0.2 for o, r in zip(out, raws)]

    assert np.allclose(pulled(0), [0.3, 0.3], atol=1e-3)  # both ways alike: 0.6 of one pass of two
    # The coarse frame takes more of the fine one (0.6 x 2, within MAX_WEIGHT), the fine one less.
    assert np.allclose(pulled(1), [0.15, MAX_WEIGHT / 2], atol=1e-3)


def test_the_stabiliser_warps_bicubically_and_keeps_the_detail_of_a_slow_pan(monkeypatch):
    """A pan of half a pixel a frame, perfectly restored: what the stabiliser blends in must be as
    sharp as the frame. Bilinear warps, repeated by its forward pass, blur it (the shipped
    interpolation is the bicubic one, revamp.video.flow.INTERPOLATION)."""
    import cv2

    import revamp.video.flow as flow
    from revamp.video.stabilize import TemporalStabilizer, stabilize_clip

    base = natural_image(160, 200, seed=8)
    pan = [np.float32([[1, 0, -0.5 * t], [0, 1, 0]]) for t in range(8)]
    frames = [cv2.warpAffine(base, m, (200, 160), flags=cv2.INTER_CUBIC) for m in pan]
    truth = [f.astype(np.float32) / 255 for f in frames]

    def fidelity():
        out = stabilize_clip(TemporalStabilizer(0.6), frames, [t.copy() for t in truth])
        return np.mean([psnr(255 * o, 255 * t, crop=16) for o, t in zip(out[1:], truth[1:])])

    assert flow.INTERPOLATION == cv2.INTER_CUBIC
    bicubic = fidelity()
    monkeypatch.setattr(flow, "INTERPOLATION", cv2.INTER_LINEAR)
    assert bicubic > fidelity() + 2  # dB; about 3.4 here


def test_a_model_shipped_with_its_own_stabiliser_mix_is_stabilised_at_it(tmp_path):
    """A model file whose recipe records a stabiliser mix (scripts/ship_model.py --stabilize) is
    stabilised at it unless another mix is asked for; other models at STABILIZE. A file with a mix
    out of range is refused as a bad model file."""
    from revamp.defaults import STABILIZE
    from revamp.models.files import ModelFileError, save_model
    from revamp.models.unet import UNetConfig, UNetGenerator
    from revamp.video.job import restore_frames

    frames = moving_frames(4, 64, 96, seed=2)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, decoder="light"))
    save_model(model, tmp_path / "own.safetensors", name="own", task="test", recipe={"stabilize": 0.3}, half=False)
    own = Restorer(str(tmp_path / "own.safetensors"), device="cpu")
    assert own.stabilize == 0.3 and Restorer("video", device="cpu").stabilize == STABILIZE
    default = list(restore_frames(own, iter(frames)))
    assert all(np.array_equal(a, b) for a, b in zip(default, restore_frames(own, iter(frames), stabilize=0.3)))
    assert not all(np.array_equal(a, b) for a, b in zip(default, restore_frames(own, iter(frames), stabilize=STABILIZE)))
    save_model(model, tmp_path / "bad.safetensors", name="bad", task="test", recipe={"stabilize": 1.5}, half=False)
    with pytest.raises(ModelFileError, match="stabiliser mix"):
        Restorer(str(tmp_path / "bad.safetensors"), device="cpu")


def test_the_stabiliser_gates_on_a_patch_so_noise_is_averaged_and_real_change_is_not():
    """A static shot with fresh noise in every frame and a square that turns negative from frame 3
    on, restored as it came: gating on the mismatch of a GATE_WINDOW patch averages more of the
    noise than gating pixel by pixel, and neither blends the square across its change."""
    from revamp.video.stabilize import GATE_WINDOW, TemporalStabilizer, stabilize_clip

    truth = natural_image(96, 128, seed=5).astype(np.float32)
    changed = truth.copy()
    changed[32:64, 48:80] = 255 - changed[32:64, 48:80]
    truths = [truth] * 3 + [changed] * 3
    rng = np.random.default_rng(1)
    inputs = [np.clip(t + rng.normal(0, 3, t.shape), 0, 255).astype(np.uint8) for t in truths]
    raws = [f.astype(np.float32) / 255 for f in inputs]

    def stabilised(window):
        out = stabilize_clip(TemporalStabilizer(window=window), inputs, [r.copy() for r in raws])
        moved = [255 * float(np.abs(out[t] - raws[t])[40:56, 56:72].mean()) for t in (2, 3)]  # either side of the change
        return np.mean([psnr(255 * o, t) for o, t in zip(out, truths)]), moved

    assert GATE_WINDOW > 1
    patch, patch_moved = stabilised(GATE_WINDOW)
    pixel, pixel_moved = stabilised(1)
    assert patch > pixel + 0.3  # dB; about 0.54 here
    assert max(patch_moved + pixel_moved) < 2  # levels: the square differs by about 50 across the change


def test_flow_measured_on_shrunk_frames_reads_a_known_shift():
    import cv2

    from revamp.video.flow import dis_flow, flow_to_previous

    frame = natural_image(360, 640, seed=6)
    shift = (2.5, 1.25)
    shifted = cv2.warpAffine(frame, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (640, 360), flags=cv2.INTER_CUBIC)
    for downscale in (1, 2, 3):  # 3: the frame does not divide evenly
        flow = flow_to_previous(frame, shifted, dis_flow(refine=False), downscale)
        assert flow.shape == (360, 640, 2)
        # The median: flat areas of the picture read nothing. A flow not scaled back would read half.
        assert np.allclose(np.median(flow[60:-60, 60:-60].reshape(-1, 2), axis=0), shift, atol=0.25)


@pytest.mark.parametrize("scale", [1, 2])
def test_motion_measured_on_a_helper_thread_gives_the_same_frames(scale):
    """`revamp video` measures the stabiliser's flow on a second thread while the network runs;
    the frames must equal those of measuring inline, and the stabiliser must change them."""
    from concurrent.futures import ThreadPoolExecutor

    import cv2

    from revamp.codec import BLIND
    from revamp.video.job import restore_sequence
    from revamp.video.stabilize import TemporalStabilizer

    class FlickeringRestorer:  # a stand-in network: upscales and adds fresh noise to every frame
        codec_aware, blind_codecs, hint_scales = False, frozenset(), {}

        def __init__(self):
            self.rng = np.random.default_rng(1)

        def restore_rgb(self, rgb, hint=None, neighbours=None):
            big = cv2.resize(rgb, (rgb.shape[1] * scale, rgb.shape[0] * scale), interpolation=cv2.INTER_LINEAR)
            return (big + self.rng.normal(0, 0.03, big.shape)).astype(np.float32)

    frames = moving_frames(6, 64, 96, seed=5)

    def run(strength, helper=None):
        stabilizer = TemporalStabilizer(strength, scale=scale) if strength else None
        out = list(restore_sequence(FlickeringRestorer(), ((f, BLIND, None, i) for i, f in enumerate(frames)), stabilizer, helper))
        assert [i for _, i in out] == list(range(len(frames)))  # every frame, in order, with what came with it
        return [frame for frame, _ in out]

    with ThreadPoolExecutor(1) as helper:
        threaded = run(0.6, helper)
    inline, raw = run(0.6), run(0)
    assert threaded[0].shape == (64 * scale, 96 * scale, 3)
    assert all(np.array_equal(a, b) for a, b in zip(threaded, inline))
    assert not any(np.array_equal(a, b) for a, b in zip(threaded, raw))  # the first frame too: it looks ahead


@pytest.mark.parametrize("codec,suffix", [("prores", ".mov"), ("h265", ".mp4")])
def test_output_codecs(tmp_path, identity, codec, suffix):
    src = make_video(tmp_path / "in.mkv", n=5, audio=False, subtitles=False)
    out = tmp_path / f"out{suffix}"
    _run(src, out, identity, codec=codec)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == {"prores": "prores", "h265": "hevc"}[codec]
    assert frame_times(out) == frame_times(src)


def test_torchrun_shares_one_video_across_two_ranks(tmp_path, identity):
    """Ranks restore alternate segments; rank 0 muxes: the same frames as one process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = make_video(tmp_path / "in.mkv", n=20)
    model = str(identity.model_path)
    common = ["video", str(src), "--model", model, "--codec", "ffv1", "--backend", "torch", "--segment-frames", "6", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "revamp.cli", *common, "-o", str(tmp_path / "two.mkv")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "12 restored in this run" in proc.stderr  # rank 0: segments 0 and 2 (frames 0-5, 12-17) of 0-3
    single = subprocess.run([sys.executable, "-m", "revamp.cli", *common, "-o", str(tmp_path / "one.mkv")], capture_output=True,
                            text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    a, b = decoded_rgb(tmp_path / "two.mkv"), decoded_rgb(tmp_path / "one.mkv")
    assert len(a) == len(b) == 20 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert frame_times(tmp_path / "two.mkv") == frame_times(src)


@pytest.mark.parametrize("codec", ["libx264", "mpeg2video", "libx265"])
def test_codec_aware_model_is_told_each_frames_quantisers(tmp_path, monkeypatch, codec):
    import revamp.video.job as job
    from revamp.codec import BLIND
    from revamp.data.degrade import VIDEO_CODECS
    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator
    from revamp.video.stabilize import blend_tolerance

    path = tmp_path / "aware.safetensors"
    save_model(UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, decoder="light", cond_channels=2)), path,
               name="aware", task="test", recipe={}, half=False)
    hints, tolerances = [], []
    real = job.hint_for_video_frame
    monkeypatch.setattr(job, "hint_for_video_frame", lambda frame, name: hints.append(real(frame, name)) or hints[-1])

    class Recording(job.TemporalStabilizer):  # each frame's blending tolerance, as the stabiliser gets it
        def measure(self, frame_in, tolerance=None):
            tolerances.append(tolerance)
            return super().measure(frame_in, tolerance)

    monkeypatch.setattr(job, "TemporalStabilizer", Recording)
    options = {"qp": "30"} if codec == "libx264" else {"x265-params": "qp=30:log-level=none"} if codec == "libx265" else None
    src = make_video(tmp_path / "in.mkv", n=10, codec=codec, options=options, subtitles=False)
    report = _run(src, tmp_path / "out.mkv", Restorer(str(path), device="cpu"), quality=18)  # a set CRF: no quantiser probe
    assert report.restored_frames == 10 and len(hints) == 10
    decoder = next(dec for enc, dec, _ in VIDEO_CODECS.values() if enc == codec)
    assert tolerances == [blend_tolerance(decoder, h) for h in hints]  # each frame's own, from its quantisers
    if codec != "libx265":  # H.264 / MPEG-2: every frame's macroblock map (MPEG-2's last frame may come without one)
        assert sum(h.steps is not None and h.block == 16 for h in hints) >= 9
        assert len({round(t, 6) for t in tolerances}) > 1  # I frames finer than P and B
    else:  # HEVC: each picture's slice QP, from the bitstream (I frames 3 below the others)
        assert all(h is not BLIND for h in hints)
        assert {round(float(6 * np.log2(h.steps.mean() / 0.625))) for h in hints} <= {27, 30, 31, 32}
        assert len({round(t, 6) for t in tolerances}) > 1  # the stabiliser's tolerance follows them too


def test_shipped_models_name_the_codecs_they_learnt_blind():
    from revamp.models.files import blind_video_codecs, read_metadata
    from revamp.models.registry import resolve_model

    def recipe(name):
        return json.loads(read_metadata(resolve_model(name))["recipe"])

    # trained with H.265 blind: `revamp video` withholds its slice QPs
    assert blind_video_codecs(recipe("video-quality")) == {"h265"}
    # trained last with H.265 told its step (earlier runs learnt it blind: the chain's recipes keep that)
    video = recipe("video")
    assert video["degradation"]["video"]["blind_codecs"] == [] and blind_video_codecs(video) == frozenset()
    assert video["init_recipe"]["degradation"]["video"]["blind_codecs"] == []
    assert video["init_recipe"]["init_recipe"]["degradation"]["video"]["blind_codecs"] == ["h265"]
    assert blind_video_codecs(recipe("default")) == frozenset()  # trained with H.265 told its step


def test_each_model_is_given_video_frames_in_rgb_as_it_learnt_them(tmp_path, identity, monkeypatch):
    """Models trained on FFmpeg's fast YUV->RGB conversion (about 1.3 levels darker; their recipes
    predate ``video_rgb``) learnt to brighten its frames back and are given frames through it; the
    others get the exact conversion. The identity model shows which one `revamp video` used."""
    from revamp.models.files import exact_video_rgb, read_metadata
    from revamp.models.registry import resolve_model

    def exact(name):
        return exact_video_rgb(json.loads(read_metadata(resolve_model(name))["recipe"]))

    assert exact("video") and exact("full-psnr")  # trained with the exact conversion / never on video
    assert not exact("default") and not exact("full") and not exact("sr2x")  # trained on video frames before it
    assert exact_video_rgb({"degradation": {"video": {"prob": 0.25}}, "video_rgb": "exact"})
    assert not exact_video_rgb({"degradation": {"video": {"prob": 0.25}}}) and not exact_video_rgb({"clips": ["clips/"]})

    src = make_video(tmp_path / "in.mkv", codec="ffv1", n=4, audio=False, subtitles=False)
    level = {}
    for flag in (True, False):
        monkeypatch.setattr(identity, "exact_video_rgb", flag)
        _run(src, tmp_path / f"out-{flag}.mkv", identity, codec="ffv1", stabilize=0)
        level[flag] = np.mean([luma.mean() for luma in y_planes(tmp_path / f"out-{flag}.mkv")])
    source = np.mean([luma.mean() for luma in y_planes(src)])
    assert abs(level[True] - source) < 0.3 and level[False] < source - 0.7


def test_the_network_is_told_a_fraction_of_a_video_frames_step_and_the_stabiliser_all_of_it(monkeypatch):
    from revamp.codec import BLIND, CodecHint
    from revamp.defaults import BLIND_VIDEO_STRENGTH, H265_HINT_SCALE, VIDEO_HINT_SCALE
    from revamp.models.files import hint_scales
    from revamp.video import job
    from revamp.video.stabilize import TemporalStabilizer

    told, tolerances = [], []

    class Brightening:  # a codec-aware stand-in whose correction is +20 levels everywhere
        codec_aware, scale, blind_codecs = True, 1, frozenset()

        def __init__(self):
            self.hint_scales = hint_scales({})  # a model shipped without its own: the defaults

        def restore_rgb(self, rgb, hint=None, neighbours=None):
            told.append(hint)
            return rgb + np.float32(20 / 255)

    real = job.blend_tolerance
    monkeypatch.setattr(job, "blend_tolerance", lambda codec, hint: tolerances.append(hint) or real(codec, hint))
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 3
    hints = [CodecHint.constant(40.0, 32, 32, "h264 quantisers"), BLIND, CodecHint.constant(20.0, 32, 32, "h264 quantisers")]
    out = list(job.restore_sequence(Brightening(), ((f, h, None, i) for i, (f, h) in enumerate(zip(frames, hints))), TemporalStabilizer(),
                                    codec="h264"))
    assert len(out) == 3 and 0 < VIDEO_HINT_SCALE < 1
    assert np.allclose(told[0].steps, 40 * VIDEO_HINT_SCALE) and told[1] is BLIND and np.allclose(told[2].steps, 20 * VIDEO_HINT_SCALE)
    assert len(tolerances) == 3 and all(a is b for a, b in zip(tolerances, hints))  # the stabiliser's tolerance: the step as reported
    # Frames with quantisers keep the whole correction, a blind frame BLIND_VIDEO_STRENGTH of it.
    out = [frame for frame, _ in job.restore_sequence(Brightening(), ((f, h, None, i) for i, (f, h) in enumerate(zip(frames, hints))), None)]
    assert 0 < BLIND_VIDEO_STRENGTH < 1
    assert [int(o[0, 0, 0]) for o in out] == [120, round(100 + 20 * BLIND_VIDEO_STRENGTH), 120]
    # A model that learnt a codec blind (its recipe's degradation.video.blind_codecs) is never told its quantisers.
    told.clear()
    restorer = Brightening()
    restorer.blind_codecs = frozenset({"h265"})
    hevc = CodecHint.constant(40.0, 32, 32, "hevc slice QP", "h265")
    out = job.restore_video_frame(restorer, frames[0], hevc)
    assert told == [BLIND] and round(float(out[0, 0, 0]) * 255) == round(100 + 20 * BLIND_VIDEO_STRENGTH)
    job.restore_video_frame(Brightening(), frames[0], hevc)
    assert np.allclose(told[1].steps, 40 * H265_HINT_SCALE)  # H.265's own scale
    restorer = Brightening()
    restorer.hint_scales["h265"] = 0.5  # a model shipped with its own (scripts/ship_model.py --h265-hint-scale)
    job.restore_video_frame(restorer, frames[0], hevc)
    assert np.allclose(told[2].steps, 40 * 0.5)
    restorer.hint_scales["h264"] = 0.8  # and its own for H.264's macroblock maps (--h264-hint-scale), not MPEG-2's
    for codec in ("h264", "mpeg2"):
        job.restore_video_frame(restorer, frames[0], CodecHint.constant(40.0, 32, 32, f"{codec} quantisers", codec))
    assert np.allclose(told[3].steps, 40 * 0.8) and np.allclose(told[4].steps, 40 * VIDEO_HINT_SCALE)


def test_lossless_video_output_keeps_what_revamp_image_gains(tmp_path):
    """`revamp video --codec ffv1` and `revamp image` on the same decoded frames, both measured on
    BT.601 Y against the clean frames: the video path (YUV -> RGB -> model -> YUV, hints from the
    macroblock quantisers, stabiliser) must not lose what the image path gains."""
    from conftest import shared_path
    from PIL import Image

    from revamp.metrics import rgb_to_y

    with av.open(str(shared_path("data", "video", "carphone", "carphone_pristine.mp4"))) as c:  # a real clip, QCIF
        clean = [f.to_ndarray(format="rgb24", threads=1)[:128, :160] for _, f in zip(range(8), c.decode(video=0))]
    src = make_video(tmp_path / "in.mkv", clean, options={"qp": "37", "bframes": "2"}, audio=False, subtitles=False)
    frames = tmp_path / "frames"
    frames.mkdir()
    from revamp.video.io import frame_to_rgb

    with av.open(str(src)) as c:  # decoded exactly (`default` itself is given the fast conversion's frames in revamp video)
        for i, frame in enumerate(c.decode(video=0)):
            Image.fromarray(frame_to_rgb(frame)).save(frames / f"{i:03d}.png")
    assert main(["video", str(src), "-o", str(tmp_path / "out.mkv"), "--codec", "ffv1", "--model", "default", "-q"]) == 0
    assert main(["image", str(frames), "-o", str(tmp_path / "images"), "-q"]) == 0

    def psnr_y(planes):
        return float(np.mean([10 * np.log10(255**2 / np.mean((p - rgb_to_y(c)) ** 2)) for p, c in zip(planes, clean)]))

    with av.open(str(tmp_path / "out.mkv")) as c:
        video = [f.to_ndarray(format="yuv420p", threads=1)[:128].astype(np.float64) for f in c.decode(video=0)]
    with av.open(str(src)) as c:
        compressed = [f.to_ndarray(format="yuv420p", threads=1)[:128].astype(np.float64) for f in c.decode(video=0)]
    images = [rgb_to_y(np.asarray(Image.open(tmp_path / "images" / f"{i:03d}.png"))) for i in range(8)]
    assert len(video) == 8
    base, via_video, via_image = psnr_y(compressed), psnr_y(video), psnr_y(images)
    assert via_image > base  # the model does restore these frames
    assert via_video >= via_image - 0.02, (base, via_video, via_image)


@pytest.mark.parametrize("codec, options, expected", [("libx264", {"qp": "37"}, (35, 39)), ("mpeg2video", None, "known"),
                                                      ("libx265", {"x265-params": "qp=37:log-level=none"}, (35, 39)),
                                                      ("libvpx-vp9", {"crf": "30", "b": "0"}, None)])
def test_default_output_quality_follows_the_inputs_quantisers(tmp_path, codec, options, expected):
    from revamp.video.io import OUTPUT_CRF_BLIND, OUTPUT_CRF_MAX, OUTPUT_CRF_MIN, output_crf
    from revamp.video.job import input_qp

    src = make_video(tmp_path / "in.mkv", n=12, codec=codec, options=options, audio=False, subtitles=False)
    qp = input_qp(src)
    if expected is None:
        assert qp is None and output_crf(qp) == OUTPUT_CRF_BLIND  # VP9: no quantisers are read
    elif codec in ("libx264", "libx265"):
        assert expected[0] <= qp <= expected[1]  # I frames at QP-3, B frames at QP+2 (HEVC: the slice QPs)
        assert OUTPUT_CRF_MAX - 6 <= output_crf(qp) <= OUTPUT_CRF_MAX
    else:  # MPEG-2 at the encoder's default rate: some quantiser is read
        assert qp is not None and OUTPUT_CRF_MIN <= output_crf(qp) <= OUTPUT_CRF_MAX
    assert output_crf(20) == OUTPUT_CRF_MIN and output_crf(32) == 3 and output_crf(50) == OUTPUT_CRF_MAX


def _x264_settings(quality: int | None) -> dict[str, str]:
    """The settings x264 wrote into its stream (its SEI) when `revamp video`'s encoder ran at CRF ``quality``."""
    import io

    from revamp.evaluation.video import BT601
    from revamp.video.io import open_encoder_stream, rgb_to_frame

    buf, packets = io.BytesIO(), []
    with av.open(buf, "w", format="matroska") as container:
        stream = open_encoder_stream(container, "h264", quality, BT601, 64, 48)
        for i in range(3):
            frame = rgb_to_frame(np.full((48, 64, 3), 40 * i, np.uint8), "yuv420p", BT601)
            frame.pts, frame.time_base = i, BT601.time_base
            packets += stream.encode(frame)
        packets += stream.encode(None)
    data = b"".join(bytes(p) for p in packets)
    text = data[data.index(b"options: ") + 9 :].split(b"\0")[0].decode()
    return dict(kv.split("=", 1) for kv in text.split())


def test_near_transparent_outputs_use_the_fast_preset_without_psycho_visual_tuning():
    fidelity, small = _x264_settings(None), _x264_settings(18)
    assert (fidelity["subme"], fidelity["ref"], fidelity["psy"]) == ("4", "2", "0")  # x264's `faster`, psy off
    assert fidelity["aq"].endswith(":0.00")  # no adaptive quantisation
    assert (small["subme"], small["ref"], small["psy"]) == ("7", "3", "1")  # above OUTPUT_CRF_MAX: x264's defaults


def test_context_windows_reach_past_both_ends_and_every_frame_comes_once():
    from revamp.video import job

    class Frame:
        def __init__(self, i):
            self.i = i

    for count in (0, 1, 2, 5):
        for n in (0, 1, 2):
            out = list(job._with_context((Frame(i) for i in range(count)), n, lambda frame: frame.i))  # "RGB": the index
            assert [f.i for f, _ in out] == list(range(count))
            for i, (_, context) in enumerate(out):
                assert context == ([j if 0 <= j < count else None for j in range(i - n, i + n + 1)] if n else None)


SMALL_MULTIFRAME = dict(encoder="mobilenetv3_small_100", width=8, decoder="light", neighbours=1)


def small_multiframe_file(path, **config):
    """A small untrained multi-frame model (SMALL_MULTIFRAME, with ``config``) saved at ``path``: (path, its Restorer)."""
    import torch

    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator

    torch.manual_seed(0)
    save_model(UNetGenerator(UNetConfig(**{**SMALL_MULTIFRAME, **config})), path, name=path.stem, task="test", recipe={}, half=False)
    return path, Restorer(str(path), device="cpu")


def raw_frame_planes(restorer, frames):
    """The neighbour planes the network is given for each of ``frames`` (uint8 RGB) restored as
    raw frames (revamp.video.job.restore_frames, no stabiliser)."""
    from revamp.video.job import restore_frames

    seen = []

    class Recording(_Interrupt):
        def restore_rgb(self, rgb, hint=None, neighbours=None):
            seen.append(neighbours)
            return super().restore_rgb(rgb, hint=hint, neighbours=neighbours)

    assert len(list(restore_frames(Recording(restorer, len(frames)), frames, stabilize=0))) == len(frames)
    return seen


def neighbour_fields(n: int, **fields):
    """A model's neighbour fields (revamp.video.neighbours.NeighbourFields): a UNetConfig's."""
    from revamp.models.unet import UNetConfig

    return UNetConfig(neighbours=n, **fields)


def test_neighbours_are_aligned_and_a_scene_cut_gives_the_frame_itself():
    from revamp.models.contract import NEUTRAL_QUALITY
    from revamp.video.neighbours import align, neighbour_planes, quality_value, still_planes
    from revamp.video.stabilize import TemporalStabilizer

    frames = moving_frames(3, 96, 128, seed=5)  # a pan: one pixel per frame
    other = natural_image(96, 128, seed=11)  # another shot
    aligned, weight = align(frames[1], frames[0])
    assert weight.mean() > 0.8
    assert np.abs(aligned[8:-8, 8:-8] * 255 - frames[1][8:-8, 8:-8]).mean() < 3  # warped onto the frame
    assert np.abs(frames[0][8:-8, 8:-8].astype(float) - frames[1][8:-8, 8:-8]).mean() > 5  # which it was not before
    cut, weight = align(frames[1], other)
    assert not weight.any() and np.array_equal(cut, frames[1] / np.float32(255))
    planes = neighbour_planes([other, frames[1], frames[2]], 1, neighbour_fields(1))
    assert planes.shape == (6, 96, 128)
    assert np.array_equal(planes[:3], still_planes(frames[1] / np.float32(255), 1)[:3])  # the cut side: the frame itself
    edge = neighbour_planes(frames, 0, neighbour_fields(2))  # nothing before the first frame
    assert np.array_equal(edge[:6], still_planes(frames[0] / np.float32(255), 2)[:6])
    # Quality planes: the finer neighbour (step 20 against the frame's 40) reads above neutral where
    # its pixels were taken, the coarser one below; across the cut and beyond the ends, neutral.
    quality = neighbour_fields(1, neighbour_quality=True)
    planes_q = neighbour_planes(frames, 1, quality, steps=[20.0, 40.0, 80.0])
    assert planes_q.shape == (8, 96, 128) and np.array_equal(planes_q[:6], neighbour_planes(frames, 1, neighbour_fields(1)))
    inner = (slice(8, -8), slice(8, -8))
    assert planes_q[6][inner].mean() > 0.7 and planes_q[7][inner].mean() < 0.3
    assert quality_value(40.0, 20.0) == 0.75 and quality_value(40.0, None) == NEUTRAL_QUALITY == quality_value(None, 20.0)
    assert (neighbour_planes([other, frames[1], frames[2]], 1, quality, steps=[10.0, 40.0, 40.0])[6] == NEUTRAL_QUALITY).all()
    assert (neighbour_planes(frames, 0, quality, steps=[40.0, 10.0, 10.0])[6] == NEUTRAL_QUALITY).all()
    assert (neighbour_planes(frames, 1, quality)[6:] == NEUTRAL_QUALITY).all()  # steps unknown (raw frames)
    stabilizer = TemporalStabilizer()
    stabilizer.measure(other)
    cut = stabilizer.measure(frames[1])
    assert cut.forward is None and cut.backward is None  # the stabiliser blends nothing across the cut either, either way
    pan = stabilizer.measure(frames[2])
    assert pan.forward is not None and pan.backward is not None


def test_the_stabiliser_takes_the_warps_the_neighbours_measured(monkeypatch):
    """A multi-frame model's neighbours at -1 and +1 are the stabiliser's forward and backward
    motion: with the stream's Warps shared, the stabiliser measures nothing itself and gets the
    same motion, to the bit, as one that measures its own."""
    import revamp.video.flow as flow
    from revamp.video.neighbours import neighbour_planes
    from revamp.video.stabilize import TemporalStabilizer

    frames = [np.ascontiguousarray(f) for f in moving_frames(6, 96, 128, seed=3)]
    measured, warp_between = [], flow.warp_between

    def counted(*args):
        measured.append(args[:2])
        return warp_between(*args)

    monkeypatch.setattr(flow, "warp_between", counted)
    warps, fields = flow.Warps(), neighbour_fields(2, neighbour_window=7)
    shared, own = TemporalStabilizer(warps=warps), TemporalStabilizer()
    for i, frame in enumerate(frames):
        neighbour_planes(frames, i, fields, warps)
        before = len(measured)
        pair = shared.measure(frame)
        assert len(measured) == before  # both pairs were the neighbours'
        alone = own.measure(frame)
        if i == 0:
            assert pair.forward is None and alone.forward is None
            continue
        for mine, theirs in ((pair.forward, alone.forward), (pair.backward, alone.backward)):
            assert np.array_equal(mine.weight, theirs.weight) and all(np.array_equal(a, b) for a, b in zip(mine.maps, theirs.maps))
    # Each pair once: the neighbours' 2 x 2 a side, less those beyond the ends; the lone stabiliser's 2 per frame after the first.
    assert len(measured) == (4 * 6 - 2 * (1 + 2)) + 2 * 5


def test_neighbour_gates_on_a_patch_answer_to_the_patch_and_let_less_real_change_in():
    """A static shot whose neighbour has fresh noise and a square 60 levels brighter or darker:
    gating on the mismatch of a 7 x 7 patch gives a gate that barely follows the noise pixel by
    pixel, and lets less of the changed square in (the flow matches some of its pixels to others,
    which a per-pixel gate lets through)."""
    from revamp.video.neighbours import align

    truth = natural_image(96, 128, seed=5).astype(np.float32)
    changed = truth.copy()
    square = changed[32:64, 48:80]
    square += np.where(square > 127, -60, 60)
    rng = np.random.default_rng(1)
    frame, neighbour = (np.clip(t + rng.normal(0, 6, t.shape), 0, 255).astype(np.uint8) for t in (truth, changed))
    static = np.ones(truth.shape[:2], bool)
    static[24:72, 40:88] = False  # the square and a margin of a window around it
    inside = (slice(35, 61), slice(51, 77))  # the square less half a window

    _, patch = align(frame, neighbour, window=7)
    _, pixel = align(frame, neighbour)
    assert patch[static].std() < 0.5 * pixel[static].std()  # about 0.06 against 0.15 here
    assert patch[inside].mean() < 0.8 * pixel[inside].mean()  # about 0.10 against 0.16


def test_a_models_neighbour_window_gates_its_neighbours_in_every_path(tmp_path):
    """The gates' window is the model's (UNetConfig.neighbour_window, in its file): `revamp video`
    on raw frames, `revamp eval --video` and the training samples all gate with it, and a
    fine-tune may change it (it prepares the input; no weight depends on it)."""
    from revamp.codec import BLIND
    from revamp.data.degrade import build_video_degradation
    from revamp.evaluation.video import clip_neighbours
    from revamp.train.generator import build_generator
    from revamp.video.neighbours import neighbour_planes

    config = dict(SMALL_MULTIFRAME)
    path, restorer = small_multiframe_file(tmp_path / "window7.safetensors", neighbour_window=7)
    assert restorer.config.neighbour_window == 7

    rng = np.random.default_rng(2)
    frames = [np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8) for f in moving_frames(3, 64, 96, seed=3)]
    patch, pixel = neighbour_planes(frames, 1, neighbour_fields(1, neighbour_window=7)), neighbour_planes(frames, 1, neighbour_fields(1))
    assert np.abs(patch - pixel).max() > 0.05  # the two windows give different planes here
    assert np.array_equal(list(clip_neighbours(restorer, frames, [BLIND] * 3))[1], patch)

    assert np.array_equal(raw_frame_planes(restorer, frames)[1], patch)

    video = build_video_degradation({"codecs": {"h264": [30, 30]}}, {"neighbours": 1, "neighbour_window": 7})
    assert (video.neighbours, video.neighbour_window) == (1, 7)
    model, _ = build_generator({"init": str(path), "model": dict(config, neighbour_window=3)})
    assert model.config.neighbour_window == 3
    with pytest.raises(ValueError, match="architecture"):
        build_generator({"init": str(path), "model": dict(config, neighbours=2)})


def test_a_step_gate_follows_the_frames_quantiser_in_every_path(tmp_path):
    """With ``neighbour_step_gate`` the gates' tolerance follows the frame's quantiser step: a
    finely quantised frame lets in less of a neighbour that really changed, a coarse one more of a
    neighbour that differs by noise; unknown steps (raw frames) keep the fixed tolerance. The
    model's file carries the choice to `revamp eval --video`, raw-frame `revamp video` and the
    training samples."""
    from revamp.codec import BLIND, CodecHint
    from revamp.data.degrade import build_video_degradation, video_roundtrip
    from revamp.evaluation.video import clip_neighbours
    from revamp.train.generator import build_generator
    from revamp.video.neighbours import GATE_RANGE, TOLERANCE, gate_tolerance, neighbour_planes

    fine, coarse = gate_tolerance("h264", 8.0), gate_tolerance("h264", 90.0)
    assert GATE_RANGE[0] <= fine < TOLERANCE < coarse <= GATE_RANGE[1]
    assert gate_tolerance("mpeg2", 8.0) > fine  # MPEG's steps are finer for the same noise
    assert gate_tolerance("h264", None) == gate_tolerance(None, 40.0) == TOLERANCE

    # A static shot: the neighbour has fresh noise and a square 40 levels brighter or darker.
    truth = natural_image(96, 128, seed=5).astype(np.float32)
    changed = truth.copy()
    square = changed[32:64, 48:80]
    square += np.where(square > 127, -40, 40)
    rng = np.random.default_rng(1)
    frame, neighbour = (np.clip(t + rng.normal(0, 4, t.shape), 0, 255).astype(np.uint8) for t in (truth, changed))
    gated = neighbour_fields(1, neighbour_window=7, neighbour_step_gate=True)

    def let_in(fields, step, region):
        planes = neighbour_planes([neighbour, frame, frame], 1, fields, steps=[step, step, step], codec="h264")
        return np.abs(planes[:3].transpose(1, 2, 0)[region] * 255 - frame[region]).mean()
    inside, static = (slice(38, 58), slice(54, 74)), (slice(4, 24), slice(4, 40))
    fixed = neighbour_fields(1, neighbour_window=7)
    assert let_in(gated, 8.0, inside) < 0.5 * let_in(fixed, 8.0, inside)  # the change stays out
    assert let_in(gated, 90.0, static) > let_in(fixed, 90.0, static)  # the noise comes in: it averages out
    assert np.array_equal(neighbour_planes([neighbour, frame, frame], 1, gated), neighbour_planes([neighbour, frame, frame], 1, fixed))

    config = dict(SMALL_MULTIFRAME, neighbour_window=7)
    path, restorer = small_multiframe_file(tmp_path / "gated.safetensors", **config, neighbour_step_gate=True)
    assert restorer.config.neighbour_step_gate

    frames = [np.clip(f + rng.normal(0, 8, f.shape), 0, 255).astype(np.uint8) for f in moving_frames(3, 64, 96, seed=3)]
    hints = [CodecHint.constant(8.0, 64, 96, "test", "h264")] * 3
    told = list(clip_neighbours(restorer, frames, hints))[1]
    assert np.array_equal(told, neighbour_planes(frames, 1, gated, steps=[8.0] * 3, codec="h264"))
    assert not np.array_equal(told, neighbour_planes(frames, 1, fixed, steps=[8.0] * 3, codec="h264"))
    assert np.array_equal(list(clip_neighbours(restorer, frames, [BLIND] * 3))[1], neighbour_planes(frames, 1, fixed))

    assert np.array_equal(raw_frame_planes(restorer, frames)[1], neighbour_planes(frames, 1, fixed))  # raw frames: no steps

    video = build_video_degradation({"codecs": {"h264": [22, 22]}, "frames": 3}, {"neighbours": 1, "neighbour_window": 7, "neighbour_step_gate": True})
    assert video.neighbour_step_gate
    sample, _ = video.sample_clip(frames, 1, np.random.default_rng(0))
    steps: list[float] = []
    decoded = video_roundtrip(frames, "h264", 22, steps=steps)
    for fields, same in ((gated, True), (fixed, False)):
        planes = (neighbour_planes(decoded, 1, fields, steps=steps, codec="h264") * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
        assert np.array_equal(sample[..., 3:], planes) == same
    model, _ = build_generator({"init": str(path), "model": dict(config, neighbour_step_gate=False)})
    assert not model.config.neighbour_step_gate


@pytest.fixture(scope="module")
def multiframe(tmp_path_factory):
    """A small untrained multi-frame, codec-aware generator with quality planes, whose neighbour weights are non-zero."""
    import torch

    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator

    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, decoder="light", cond_channels=2, neighbours=1,
                                     neighbour_quality=True))
    with torch.no_grad():
        model.to_rgb.weight.normal_(0, 0.01)
    path = tmp_path_factory.mktemp("model") / "multiframe.safetensors"
    save_model(model, path, name="multiframe", task="test", recipe={}, half=False)
    return Restorer(str(path), device="cpu")


@pytest.mark.parametrize("frames", [1, 2])
def test_multi_frame_model_on_clips_shorter_than_its_window(tmp_path, multiframe, frames):
    src = make_video(tmp_path / "in.mkv", n=frames, audio=False, subtitles=False)
    report = _run(src, tmp_path / "out.mkv", multiframe)
    assert report.frames == report.restored_frames == frames
    assert frame_times(tmp_path / "out.mkv") == frame_times(src)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_multi_frame_model_is_told_how_finely_its_neighbours_were_quantised(tmp_path, multiframe, codec):
    """`revamp video` gives a neighbour_quality model each neighbour's step against the frame's, as
    the decoder exports them (H.264's macroblock maps, HEVC's slice QPs): an IPB stream at one QP
    has neighbours both finer and coarser than the frame; the first frame has none before it."""
    seen = []

    class Recording(_Interrupt):
        def restore_rgb(self, rgb, hint=None, neighbours=None):
            seen.append(neighbours)
            return super().restore_rgb(rgb, hint=hint, neighbours=neighbours)

    options = {"qp": "30"} if codec == "libx264" else {"x265-params": "qp=30:log-level=none"}
    src = make_video(tmp_path / "in.mkv", n=10, codec=codec, options=options, audio=False, subtitles=False)
    report = _run(src, tmp_path / "out.mkv", Recording(multiframe, 10), stabilize=0, codec="ffv1")
    assert report.restored_frames == 10 and all(planes.shape == (8, 64, 96) for planes in seen)
    quality = np.array([planes[6:].reshape(2, -1).mean(axis=1) for planes in seen])  # (frame, before/after)
    assert quality[0, 0] == 0.5  # nothing before the first frame: neutral
    assert (quality > 0.53).any() and (quality < 0.47).any()  # I/P next to B frames, and the other way round

def test_multi_frame_video_with_a_scene_cut_keeps_frames_audio_and_timestamps(tmp_path, multiframe):
    """A cut after frame 11: the frames beside it are restored from their own shot only, so
    frame 11 comes out as it does when the clip ends there (segments of 5 frames: the window
    reaches across segment boundaries)."""
    shot_a, shot_b = moving_frames(12, 64, 96, seed=1), moving_frames(12, 64, 96, seed=2)
    src = make_video(tmp_path / "in.mkv", shot_a + shot_b, options={"qp": "0"})  # lossless H.264: both files hold the same frames
    alone = make_video(tmp_path / "a.mkv", shot_a, options={"qp": "0"}, audio=False, subtitles=False)
    report = _run(src, tmp_path / "out.mkv", multiframe, stabilize=0, codec="ffv1", segment_frames=5)
    assert report.frames == report.restored_frames == 24 and report.damage is None
    assert frame_times(tmp_path / "out.mkv") == frame_times(src)
    assert packet_digests(tmp_path / "out.mkv", "audio") == packet_digests(src, "audio")
    _run(alone, tmp_path / "a_out.mkv", multiframe, stabilize=0, codec="ffv1")
    cut, ended = decoded_rgb(tmp_path / "out.mkv"), decoded_rgb(tmp_path / "a_out.mkv")
    assert len(ended) == 12 and np.array_equal(cut[11], ended[11]) and np.array_equal(cut[10], ended[10])
