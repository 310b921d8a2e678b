#!/usr/bin/env bash
# Trains several models side by side on one GPU machine (e.g. an H100/H200), each cut by SIGINT
# after RUN_SECONDS (it then saves its checkpoint; best.safetensors is written at each validation;
# a job still running 60 s later is killed), and collects every run's best, final and last (at
# the stop) model files and its logs under OUT.
# Usage: scripts/train_on_gpu.sh OUT DATA_ROOT NAME=CONFIG...
# (DATA_ROOT holds folders of training images, e.g. bsds500/, t91/, wiki49/ as in ../shared/data/train;
# every folder in it is trained on; scripts/gpu_stage.py stages them for the device tool.)
# At most 8 files come back from a lent machine: keep jobs x model files within 7 (logs are one).
# STAGE (default all), WORKERS (data workers per job, default 3), GEN_PHASES (a phases
# override), CLIPS (a folder of training clips, for configs with data.clips), SETS (more KEY=VALUE
# overrides, space-separated; quote one that holds spaces) and PYTHON come from the environment.
# tests/test_train.py runs it on the CPU with a tiny config (RUN_SECONDS=25).
set -uo pipefail
out=$1; data=$2; shift 2
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
runs=${RUNS:-/tmp/revamp-runs}
mkdir -p "$runs" "$out"
train=$(find "$data" -mindepth 1 -maxdepth 1 -type d | sort | paste -sd, -)
[ -n "$train" ] || { echo "train_on_gpu: no image folders in $data" >&2; exit 2; }
# GPU utilisation every 10 s beside the jobs (in logs.tar.gz), where there is a GPU.
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 10 > "$runs/gpu.csv" 2>&1 &
  smi=$!
fi
# SETS is split as the shell splits words, so a quoted item may hold spaces: SETS="seed=5 'loss={charbonnier: 1.0}'".
sets=()
while IFS= read -r item; do sets+=(--set "$item"); done < <(printf '%s' "${SETS:-}" | xargs -r -n1 printf '%s\n')
for spec in "$@"; do
  name=${spec%%=*}; config=${spec#*=}
  timeout -k 60 -s INT "${RUN_SECONDS:-230}" "${PYTHON:-python3}" -m revamp.cli train "${STAGE:-all}" --config "$config" -o "$runs/$name" \
    --set "data.train=[$train]" --set data.workers="${WORKERS:-3}" \
    ${GEN_PHASES:+--set "phases=$GEN_PHASES"} ${CLIPS:+--set "data.clips=[$CLIPS]"} "${sets[@]}" \
    > "$runs/$name.log" 2>&1 &
done
for job in $(jobs -p); do [ "$job" = "${smi:-}" ] || wait "$job"; done
[ -n "${smi:-}" ] && kill "$smi"
for spec in "$@"; do
  name=${spec%%=*}
  tail -n 3 "$runs/$name.log" | tr '\r' '\n' | grep -v 'it/s' | tail -n 2 | sed "s/^/$name: /"
  grep -h "val" "$runs/$name.log" | tr '\r' '\n' | grep "step" | sed "s/^/$name: /" | tail -n 6
  for stage in generator gan; do
    for kind in best final last; do
      f=$runs/$name/$stage/$kind.safetensors
      [ -f "$f" ] && cp "$f" "$out/$name-$stage-$kind.safetensors"
    done
  done
done
tar czf "$out/logs.tar.gz" --exclude='*.safetensors' -C "$runs" .
