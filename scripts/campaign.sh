#!/usr/bin/env bash
# A training campaign that accumulates across restarts: scripts/campaign.sh CONFIG [--set KEY=VALUE ...]
# starts (or resumes) `revamp train generator` on CONFIG in the background and returns at once.
# Runs go in legs under $REVAMP_CAMPAIGNS/NAME (default ~/.cache/revamp/campaigns: outside the work
# tree, so the same machine continues them next time): leg N resumes from its checkpoint after a
# kill (even kill -9: checkpoints come every `checkpoint_every` steps); a finished leg is followed
# by the next, warm-restarted from the best weights so far; with no legs left on this machine the
# first starts from the config's `init` (the committed fp16 weights). Log: NAME/campaign.log.
# Stop: kill -INT -- -"$(cat NAME/pid)" (the leg saves its checkpoint and the loop ends; a harder
# kill loses at most the steps since the last checkpoint).
# FOREGROUND=1 runs in the foreground; LEGS=N stops after N legs (default: until killed).
set -euo pipefail
config=${1:?usage: scripts/campaign.sh CONFIG [--set KEY=VALUE ...]}
shift
[ -f "$config" ] || { echo "campaign: config not found: $config" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
name=$(basename "$config" .yaml)
root=${REVAMP_CAMPAIGNS:-$HOME/.cache/revamp/campaigns}/$name
python=${PYTHON:-$repo/.venv/bin/python}
mkdir -p "$root"

if [ -z "${FOREGROUND:-}" ]; then
  if [ -f "$root/pid" ] && kill -0 "$(cat "$root/pid")" 2>/dev/null; then
    echo "campaign: $name is already running (pid $(cat "$root/pid")); log: $root/campaign.log" >&2
    exit 0
  fi
  FOREGROUND=1 nohup setsid "$0" "$config" "$@" >>"$root/campaign.log" 2>&1 </dev/null &
  echo $! >"$root/pid"
  echo "campaign: $name running in the background (pid $!); log: $root/campaign.log" >&2
  exit 0
fi

export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 PYTHONPATH=$repo/src${PYTHONPATH:+:$PYTHONPATH}
cd "$repo"
legs_run=0
while [ -z "${LEGS:-}" ] || [ "$legs_run" -lt "$LEGS" ]; do
  last=$(find "$root" -maxdepth 1 -name 'leg*' -type d | sort -V | tail -n 1)
  if [ -n "$last" ] && [ -f "$last/generator/checkpoint.json" ] && [ ! -f "$last/generator/final.safetensors" ]; then
    leg=$last
    echo "$(date -Is) campaign $name: resuming $(basename "$leg")"
    resume=(--resume)
  else
    leg=$root/leg$(( $(find "$root" -maxdepth 1 -name 'leg*' -type d | wc -l) + 1 ))
    mkdir -p "$leg"
    # A warm restart from the best weights of the latest leg; leg 1 starts from the config's init.
    find "$root" -path '*/generator/best.safetensors' | sort -V | tail -n 1 >"$leg/init"
    echo "$(date -Is) campaign $name: starting $(basename "$leg")${last:+ from $(cat "$leg/init")}"
    resume=()
  fi
  init=()
  [ -s "$leg/init" ] && init=(--set "init=$(cat "$leg/init")")
  "$python" -m revamp.cli train generator --config "$config" -o "$leg" "${resume[@]}" "$@" "${init[@]}" || exit $?
  legs_run=$((legs_run + 1))
done
