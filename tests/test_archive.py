"""Archive use: `revamp video` inside ffmpeg pipelines (y4m on stdin and stdout)."""
import shutil
import subprocess
import sys

import pytest
from conftest import require


@pytest.fixture()
def ffmpeg():
    path = shutil.which("ffmpeg")
    require(bool(path), "the system ffmpeg (Debian package ffmpeg)")
    return path


def _probe(ffprobe: str, path) -> list[str]:
    out = subprocess.run([ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=width,height,r_frame_rate,nb_read_frames",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True).stdout
    return out.strip().split(",")


def test_y4m_pipe_through_ffmpeg_keeps_frames_size_and_rate(tmp_path, ffmpeg):
    src = tmp_path / "tape.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=160x96:r=30000/1001", "-f", "lavfi", "-i", "sine=d=1",
                    "-frames:v", "17", "-c:v", "libx264", "-qp", "37", "-c:a", "aac", "-shortest", str(src)], check=True)
    out = tmp_path / "out.mkv"
    revamp = f"{sys.executable} -m revamp.cli video - -o - -q"
    pipeline = (f"{ffmpeg} -v error -i {src} -f yuv4mpegpipe - | {revamp} | "
                f"{ffmpeg} -v error -f yuv4mpegpipe -i - -i {src} -map 0:v -map 1:a -c:v ffv1 -c:a copy {out}")
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "17 frames -> stdout (y4m)" in proc.stderr
    ffprobe = shutil.which("ffprobe")
    assert _probe(ffprobe, out)[:4] == ["160", "96", "30000/1001", "17"]
    assert "audio" in subprocess.run([ffprobe, "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(out)],
                                     capture_output=True, text=True, check=True).stdout


def test_a_compressed_stream_on_stdin_keeps_its_quantisers_and_writes_a_file(tmp_path, ffmpeg, monkeypatch):
    """Piping the H.264 stream itself (not decoded frames) lets the codec-aware model read its quantisers."""
    src = tmp_path / "tape.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=25", "-frames:v", "8", "-c:v", "libx264", "-qp", "40",
                    str(src)], check=True)
    out = tmp_path / "out.mkv"
    pipeline = f"{ffmpeg} -v error -i {src} -c copy -f mpegts - | {sys.executable} -m revamp.cli video - -o {out} --codec ffv1 -q"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _probe(shutil.which("ffprobe"), out)[3] == "8"
    assert not list(tmp_path.glob(".*part*"))
    # The same through the Python API, checking what the model is told.
    from revamp.codec import BLIND
    from revamp.restorer import Restorer
    from revamp.video import job

    told = []
    real = job.restore_frame
    monkeypatch.setattr(job, "restore_frame", lambda r, rgb, st, hint, *a, **k: told.append(hint is not BLIND) or real(r, rgb, st, hint, *a, **k))
    job.restore_stream(src, tmp_path / "api.mkv", Restorer("video"), job.VideoOptions(codec="ffv1"), quiet=True)
    assert told and all(told)


def test_pipes_refuse_resume_and_a_terminal(tmp_path, capsys):
    from revamp.cli import main

    assert main(["video", "-", "-o", str(tmp_path / "x.mkv"), "--resume", "-q"]) == 1
    assert "--resume needs files" in capsys.readouterr().err
