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
    from revamp.inference.restorer import Restorer
    from revamp.video import job

    told = []
    restorer = Restorer("video")
    real = restorer.restore_rgb
    monkeypatch.setattr(restorer, "restore_rgb", lambda rgb, hint=None, **k: told.append(hint is not BLIND) or real(rgb, hint=hint, **k))
    job.restore_stream(src, tmp_path / "api.mkv", restorer, job.VideoOptions(codec="ffv1"), quiet=True)
    assert told and all(told)


def test_pipes_refuse_resume_and_a_terminal(tmp_path, capsys):
    from revamp.cli import main

    assert main(["video", "-", "-o", str(tmp_path / "x.mkv"), "--resume", "-q"]) == 1
    assert "--resume needs files" in capsys.readouterr().err


def _images(folder, count: int, size: int = 96):
    from conftest import write_images

    return write_images(folder, count, size, size)


def _worker(args: list[str], env: dict | None = None) -> subprocess.Popen:
    import os

    return subprocess.Popen([sys.executable, "-m", "revamp.cli", "image", *args, "-q"], stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, **(env or {})))


def test_three_workers_on_one_folder_restore_each_image_once(tmp_path):
    import json

    src = _images(tmp_path / "in", 12)
    out = tmp_path / "out"
    workers = [_worker([str(src), "-o", str(out), "--report", str(tmp_path / f"report{i}.json")]) for i in range(3)]
    for w in workers:
        assert w.wait(timeout=600) == 0, w.stderr.read()[-2000:]
    reports = [json.loads((tmp_path / f"report{i}.json").read_text()) for i in range(3)]
    done = [p for r in reports for p in r["done"]]
    assert len(done) == len(set(done)) == 12  # every image restored, none twice
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{i}.png" for i in range(12))
    for r in reports:  # each worker accounts for all 12: done by it, or by another (claimed, or finished: skipped)
        assert len(r["done"]) + len(r["skipped"]) + len(r["claimed_by_other_workers"]) == 12 and not r["failed"]


def test_a_killed_worker_leaves_no_partial_output_and_the_next_run_finishes(tmp_path):
    import signal
    import time

    src = _images(tmp_path / "in", 3, size=1024)  # big enough to be killed mid-file
    out = tmp_path / "out"
    worker = _worker([str(src), "-o", str(out), "--tile", "256"])
    deadline = time.monotonic() + 300
    while not list((out / ".revamp-claims").glob("*.lock")) if out.exists() else True:
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    finished = sorted(p.name for p in out.glob("*.png"))
    assert len(finished) < 3  # it was killed mid-way
    # Nothing visible but whole pictures; a kill during the write itself may leave a hidden temporary.
    assert all(p.name.startswith(".") and p.suffix == ".part" for p in out.iterdir() if p.is_file() and p.suffix != ".png")
    for p in out.glob("*.png"):
        from PIL import Image

        with Image.open(p) as im:
            im.load()
    unfinished = next(n for n in ("0.png", "1.png", "2.png") if n not in finished)
    from revamp.inference.batch import Claim

    claim = Claim(out / unfinished).path  # as a kill during its write leaves them: the claim file and the temporary
    claim.parent.mkdir(exist_ok=True)
    claim.touch()
    (out / f".{unfinished}.x1y2z3.part").write_bytes(b"half a picture")
    again = _worker([str(src), "-o", str(out), "--tile", "256"])
    assert again.wait(timeout=600) == 0, again.stderr.read()[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]  # the temporaries are gone too


def test_manifest_aliases_and_slurm_shards(tmp_path, capsys):
    import os

    from revamp.cli import main

    src = _images(tmp_path / "in", 4, size=64)
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"# archive\n{src / '0.png'}\n\n{src / '2.png'}\n")
    assert main(["image", "--manifest", str(manifest), "-i", str(src / "3.png"), "-o", str(tmp_path / "m"), "-n", "default",
                 "-t", "128", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "m").glob("*.png")) == ["0.png", "2.png", "3.png"]
    assert main(["image", "-o", str(tmp_path / "none"), "-q"]) == 1
    assert "no inputs" in capsys.readouterr().err
    for task in (3, 4):  # a Slurm array 3-4: two static shards of the four files
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "2"}
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            assert main(["image", str(src), "-o", str(tmp_path / "slurm"), "-q"]) == 0
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        assert f"shard {task - 3}/2: 2 restored" in capsys.readouterr().err
    assert len(list((tmp_path / "slurm").glob("*.png"))) == 4


def test_version_and_scale_alias():
    out = subprocess.run([sys.executable, "-m", "revamp.cli", "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("revamp ")
    from revamp.cli import build_parser

    assert build_parser().parse_args(["video", "a.mp4", "-o", "b.mp4", "-s", "2"]).scale == 2


def test_frame_iterator_gives_what_revamp_eval_video_restores(tmp_path):
    """revamp.video.job.restore_frames (numpy frames in, restored frames out) against the clip path
    of `revamp eval --video`: the same frames, single-frame and multi-frame models alike."""
    import numpy as np
    import torch
    from videos import moving_frames

    from revamp.defaults import STABILIZE
    from revamp.evaluation.video import restore_clip
    from revamp.inference.restorer import Restorer
    from revamp.models.files import save_model
    from revamp.models.unet import UNetConfig, UNetGenerator
    from revamp.video.job import restore_frames

    frames = moving_frames(5, 64, 96, seed=4)
    torch.manual_seed(0)
    model = UNetGenerator(UNetConfig(encoder="mobilenetv3_small_100", width=8, decoder="light", cond_channels=2, neighbours=1))
    with torch.no_grad():
        model.to_rgb.weight.normal_(0, 0.01)
    save_model(model, tmp_path / "mf.safetensors", name="mf", task="test", recipe={}, half=False)
    for restorer in (Restorer("video", device="cpu"), Restorer(str(tmp_path / "mf.safetensors"), device="cpu"),
                     Restorer("video-quality", device="cpu")):
        streamed = list(restore_frames(restorer, iter(frames)))
        reference = restore_clip(restorer, frames, STABILIZE)
        assert len(streamed) == 5 and all(np.array_equal(a, b) for a, b in zip(streamed, reference))
