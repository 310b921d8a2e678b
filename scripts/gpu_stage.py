"""Stages a training run for a lent GPU machine, whose device tool copies the work tree (tracked
files, untracked ones git does not ignore, and the ignored paths a call carries) within 64 MiB a
call: more than this repository's model files alone. So the run takes two calls (docs/models.md,
"On a lent GPU machine"):

    scripts/gpu_stage.py pack MODEL [--clips]   # e.g. default: its file and LPIPS's stay in the tree
    run 1, carry [.gpu/whl]:  install the av wheel into .gpu/site, check imports and the GPU
    run 2, carry [.gpu/data]: scripts/train_on_gpu.sh OUT .gpu/data/images NAME=CONFIG ...
    scripts/gpu_stage.py unpack                 # the whole checkout back

`pack` hides every tracked model file but MODEL's and LPIPS's, and docs/, with a sparse checkout
(`unpack` is `git sparse-checkout disable`), downloads the av wheel for the machine's Python 3.12
into .gpu/whl, and copies training images (../shared/data/train: bsds500, t91, then wiki49 file
by file while they fit) and, with --clips, the training clips into .gpu/data, so that each call
stays under the budget; it prints both calls' sizes. A file left out of the images only moves
other files into the held-out validation split (by name hash), never a held-out one into training.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / ".gpu"
MIB = 1 << 20
WEIGHTS = "src/revamp/weights"
ALWAYS = ["lpips_alex"]  # the LPIPS loss and validation


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout


def tree_bytes() -> int:
    """What a call sends before its carried paths: tracked files on disk and untracked, unignored ones."""
    names = git("ls-files", "-z").split("\0") + git("ls-files", "-z", "--others", "--exclude-standard").split("\0")
    return sum((REPO / n).stat().st_size for n in set(names) if n and (REPO / n).is_file())


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def pack(args: argparse.Namespace) -> None:
    for model in args.models:
        if not (REPO / WEIGHTS / f"{model}.safetensors").is_file():
            sys.exit(f"gpu_stage: no model file {WEIGHTS}/{model}.safetensors")
    keep = [f"/{WEIGHTS}/{m}.safetensors" for m in [*ALWAYS, *args.models]]
    git("sparse-checkout", "set", "--no-cone", "/*", "!/docs/", "!*.safetensors", *keep)
    tree = tree_bytes()
    budget = int(args.budget_mib * MIB)
    shutil.rmtree(STAGE, ignore_errors=True)
    (STAGE / "whl").mkdir(parents=True)
    if args.wheels:
        for wheel in Path(args.wheels).glob("*.whl"):
            shutil.copy(wheel, STAGE / "whl")
    else:
        import av

        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                        "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                        "-d", str(STAGE / "whl"), f"av=={av.__version__}"], check=True)
    first = tree + folder_bytes(STAGE / "whl")
    # The second call: images, folder by folder and then file by file, while they fit.
    data = STAGE / "data"
    used = tree
    if args.clips:
        shutil.copytree(Path(args.shared) / "video" / "train_clips", data / "clips")
        used += folder_bytes(data / "clips")
    left_out = []
    for folder in ("bsds500", "t91", "wiki49"):
        for src in sorted((Path(args.shared) / "train" / folder).rglob("*")):
            if not src.is_file():
                continue
            if used + src.stat().st_size > budget:
                left_out.append(src)
                continue
            dst = data / "images" / folder / src.relative_to(Path(args.shared) / "train" / folder)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
            used += src.stat().st_size
    if first > budget or used > budget:
        sys.exit(f"gpu_stage: over {args.budget_mib} MiB a call (first {first / MIB:.1f}, second {used / MIB:.1f}); "
                 "stage fewer models (scripts/gpu_stage.py unpack restores the tree)")
    print(f"tree {tree / MIB:.1f} MiB; call 1 (carry .gpu/whl) {first / MIB:.1f} MiB; call 2 (carry .gpu/data) {used / MIB:.1f} MiB; "
          f"images left out: {len(left_out)}")


def unpack(args: argparse.Namespace) -> None:
    git("sparse-checkout", "disable")
    if args.clean:
        shutil.rmtree(STAGE, ignore_errors=True)
    print("the whole checkout is back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="hide what the run does not need and stage the rest")
    p.add_argument("models", nargs="+", help=f"model files in {WEIGHTS} the run starts from (e.g. default)")
    p.add_argument("--clips", action="store_true", help="stage the training clips too (configs with data.clips)")
    p.add_argument("--shared", default=str(REPO.parent / "shared" / "data"), help="the data folder (../shared/data)")
    p.add_argument("--wheels", help="copy the wheels from this folder instead of downloading av")
    p.add_argument("--budget-mib", type=float, default=62.0, help="per call (the tool allows 64)")
    p.set_defaults(run=pack)
    u = sub.add_parser("unpack", help="the whole checkout back")
    u.add_argument("--clean", action="store_true", help="remove .gpu as well")
    u.set_defaults(run=unpack)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
