#!/usr/bin/env bash
# The package as users get it: build the sdist and wheel, `twine check` them, keep the wheel under
# PyPI's default 100 MB limit, install it into a clean virtualenv (no extras) and restore a picture
# there. Usage: scripts/check_wheel.sh [PYTHON] (default .venv/bin/python, which has build and twine).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-.venv/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -20 "$work/build.log"; exit 1; }
"$python" -m twine check --strict "$work"/dist/*
wheel=$(ls "$work"/dist/*.whl)
size=$(stat -c %s "$wheel")
echo "wheel: $(basename "$wheel"), $((size / 1000000)) MB"
[ "$size" -lt 100000000 ] || { echo "check_wheel: the wheel is over 100 MB" >&2; exit 1; }
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q -r requirements-cpu.txt
"$work/venv/bin/pip" install -q "$wheel"
sample=$(ls samples/*.jpg | head -n 1)
(cd "$work" && venv/bin/revamp image "$OLDPWD/$sample" -o restored.png && test -s restored.png)
# No extras: what needs one says which, in one line.
if (cd "$work" && venv/bin/revamp export onnx --model default -o m.onnx 2>err.txt); then
  echo "check_wheel: ONNX export worked without the onnx extra?" >&2; exit 1
fi
grep -q "revamp-restore\[onnx\]" "$work/err.txt" && [ "$(wc -l <"$work/err.txt")" -eq 1 ] || { cat "$work/err.txt"; exit 1; }
echo "check_wheel: $(basename "$wheel") installs into a clean virtualenv and restores $sample"
