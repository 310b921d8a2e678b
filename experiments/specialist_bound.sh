#!/usr/bin/env bash
# How much can knowing the JPEG quality give a model of this size? (issue #8, docs/codec.md)
# A model trained on one quality only knows that quality perfectly, and spends all its capacity on
# it: no codec-aware model of the same size can beat it there. So the gain of such a specialist
# over a blind model trained for as long on the mixed data bounds the gain of the quantiser hint.
# Both fine-tune the blind twin (configs/default_blind.yaml, trained as in docs/codec.md) for the
# same 1000 steps; only the specialists' degradation changes (one JPEG quality, no video, no
# double compression). Then LIVE1 at q10-40, RGB PSNR, no crop.
# Usage: experiments/specialist_bound.sh BLIND_TWIN OUT [QUALITY...]   (default qualities 10 20 30 40)
# Session 10 ran control + q20 (val_every 250), then q10, q30, q40, side by side on 2 CPU cores (35 and 55 min).
set -euo pipefail
init=$1; out=$2; shift 2
if [ $# -gt 0 ]; then qualities=("$@"); else qualities=(10 20 30 40); fi
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1
common=(--config configs/default_blind.yaml --set "init=$init" --set transfer=null
        --set 'phases=[{name: full, patch: 192, batch: 16, steps: 1000}]' --set optim.lr=2.0e-4 --set optim.warmup=50
        --set val_every=500 --set checkpoint_every=250 --set data.workers=1)
mkdir -p "$out"
.venv/bin/revamp train generator "${common[@]}" -o "$out/control" > "$out/control.log" 2>&1 &
for q in "${qualities[@]}"; do
  .venv/bin/revamp train generator "${common[@]}" -o "$out/q$q" --set "degradation.jpeg.quality=[$q, $q]" \
    --set degradation.jpeg.double_prob=0.0 --set degradation.video.prob=0.0 > "$out/q$q.log" 2>&1 &
done
wait
models=(--model "$out/control/generator/final.safetensors")
for q in "${qualities[@]}"; do models+=(--model "$out/q$q/generator/final.safetensors"); done
unset OMP_NUM_THREADS
.venv/bin/revamp eval "${models[@]}" --data ../shared/data/eval/live1 --degrade jpeg:10,20,30,40 \
  --metrics psnr,ssim,lpips --baseline none --out "$out/live1" -q
