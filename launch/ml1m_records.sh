#!/usr/bin/env bash
# The ML-1M runs of runs/README.md that runs/ml-1m/ does not hold yet, one
# after another: each is trained in workdirs/NAME (resuming from its last
# checkpoint when that folder holds one), logged to workdirs/NAME.log, and
# once finished copied into runs/ml-1m/NAME as a record (no parameters,
# checkpoints or plots). Commit the new records yourself.
#
#   launch/ml1m_records.sh DIR_WITH_ML-1M [NAME ...]
#
# NAME: the records to make, in the order given (default: all, in the order
# of RECORDS below). A run starts only on a checkout without changes to
# tracked files, so that its record names its code; the script waits for
# one. Environment: DEVICES (host devices the seeds split over, default 2:
# one per core of a 2-core CPU), RUNS (default runs/ml-1m), WORKDIRS
# (default workdirs), DRY_RUN=1 (print the commands, run nothing).
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
if ! data=$(cd "$1" 2>/dev/null && pwd); then  # absolute, for the runs
  echo "error: DIR_WITH_ML-1M=$1: no such folder" >&2
  exit 1
fi
shift
cd "$(dirname "$0")/.."
for name in ml-1m.train.rating ml-1m.test.rating ml-1m.test.negative; do
  if [[ ! -f $data/$name ]]; then
    echo "error: DIR_WITH_ML-1M=$data: no $name there" >&2
    exit 1
  fi
done
runs=${RUNS:-runs/ml-1m}
workdirs=${WORKDIRS:-workdirs}
python=.venv/bin/python
RECORDS=(table1/popularity table1/ease_tuned table1/ials_d192
         table1/ials_d64 fig2_d16 fig2_d32 fig2_d64 fig2_d96 fig2_d128
         fig2_d192 table1/neumf_seed0 table1/neumf_seed1 table1/neumf_seed2
         table1/neumf_seed3)

# Sets FLAGS to the flags of record $1 after `python -m dot_vs_learned.main`;
# fails for a name that is not a record.
flags_of() {
  local ml1m=--config.data.dir=$data
  case $1 in
    table1/popularity)
      FLAGS=(--config=configs/movielens.py "$ml1m"
             --config.model.name=popularity) ;;
    table1/ease_tuned)
      FLAGS=(--config=configs/tune_movielens.py
             "--config.data.dir=$workdirs/ml-1m_tune"
             "--config.final.data.dir=$data"
             "--config.sweep.models=('ease',)") ;;
    table1/ials_d192 | table1/ials_d64)
      FLAGS=(--config=configs/movielens.py:ials "$ml1m"
             "--config.model.dim=${1#table1/ials_d}"
             --config.train.num_seeds=8) ;;
    fig2_d16 | fig2_d32 | fig2_d64 | fig2_d96 | fig2_d128 | fig2_d192)
      FLAGS=(--config=configs/movielens.py "$ml1m"
             "--config.model.dim=${1#fig2_d}" --config.train.num_seeds=8) ;;
    table1/neumf_seed[0-3])
      FLAGS=(--config=configs/movielens.py:neumf "$ml1m"
             --config.train.num_seeds=2
             "--config.train.seed=${1#table1/neumf_seed}") ;;
    *) return 1 ;;
  esac
}

show() {  # a command line as the shell reads it, after "+"
  printf '+'
  printf ' %q' "$@"
}

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=("${RECORDS[@]}")
fi
for name in "${names[@]}"; do
  if ! flags_of "$name"; then
    echo "error: NAME=$name: not a record of runs/README.md; one of" \
      "${RECORDS[*]}" >&2
    exit 1
  fi
done

for name in "${names[@]}"; do
  if [[ -f $runs/$name/results.json ]]; then
    echo "$name: in $runs already"
    continue
  fi
  if [[ ! -f $workdirs/$name/results.json ]]; then
    while [[ -z ${DRY_RUN:-} &&
             -n $(git status --porcelain --untracked-files=no) ]]; do
      echo "$name: waiting for a checkout without changes to tracked files"
      sleep 60
    done
    flags_of "$name"
    command=(env "XLA_FLAGS=--xla_force_host_platform_device_count=${DEVICES:-2}"
             nice -n 19 "$python" -m dot_vs_learned.main "${FLAGS[@]}"
             "--workdir=$workdirs/$name")
    split=()  # EASE^R's tuning split, made once
    if [[ $name == table1/ease_tuned && ! -d $workdirs/ml-1m_tune ]]; then
      split=(nice -n 19 "$python" -m dot_vs_learned.splits
             "--holdout_of=$data" --name=ml-1m
             "--out_dir=$workdirs/ml-1m_tune" --pick=random)
      show "${split[@]}"
      echo
    fi
    show "${command[@]}"
    printf ' >> %q 2>&1\n' "$workdirs/$name.log"
    if [[ -n ${DRY_RUN:-} ]]; then
      continue
    fi
    mkdir -p "$workdirs/$(dirname "$name")"
    if [[ ${#split[@]} -gt 0 ]]; then
      "${split[@]}"
    fi
    echo "$name: started $(date -u '+%F %T') UTC at $(git rev-parse --short HEAD)"
    if ! "${command[@]}" >>"$workdirs/$name.log" 2>&1; then
      echo "$name: failed; see $workdirs/$name.log" >&2
      exit 1
    fi
  fi
  if [[ -n ${DRY_RUN:-} ]]; then
    echo "$name: finished in $workdirs, to be recorded in $runs"
    continue
  fi
  mkdir -p "$runs/$(dirname "$name")"
  parts=("$name")
  if [[ -f $workdirs/$name.log ]]; then
    parts+=("$name.log")
  fi
  tar -C "$workdirs" -cf - --exclude=checkpoints --exclude='*.npz' \
    --exclude='*.png' --exclude=.lock "${parts[@]}" | tar -C "$runs" -xf -
  echo "$name: finished $(date -u '+%F %T') UTC, recorded in $runs/$name"
done
