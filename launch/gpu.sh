#!/usr/bin/env bash
# Runs an experiment on a machine with NVIDIA GPUs (all of them: sweeps shard
# their vmapped axis over every visible device).
#
#   launch/gpu.sh CONFIG WORKDIR [--config.field=value ...]
#   launch/gpu.sh configs/tune_movielens.py /data/runs/tune \
#       --config.data.dir=/data/ml-1m-tuning --config.final.data.dir=/data/ml-1m
#
# Environment: VENV (default .venv-gpu), JAX_EXTRA (default "cuda12"),
# CUDA_VISIBLE_DEVICES to restrict the GPUs. Output: WORKDIR (results) and
# WORKDIR/launch.log (this script's log, appended).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
cd "$(dirname "$0")/.."
venv=${VENV:-.venv-gpu}
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -e ".[ann,plots]" "jax[${JAX_EXTRA:-cuda12}]"
fi
mkdir -p "$workdir"
{
  echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo no-git)"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  "$venv/bin/python" -c "import jax; print('jax', jax.__version__, jax.devices())"
} | tee -a "$workdir/launch.log"
"$venv/bin/python" -m dot_vs_learned.main --config="$config" \
  --workdir="$workdir" "$@" 2>&1 | tee -a "$workdir/launch.log"
