#!/usr/bin/env bash
# Runs an experiment on a Cloud TPU VM (v4-8, v5e-8, v5p-8, ...: all its
# chips; sweeps shard their vmapped axis over them), or on every host of a
# pod slice (v4-32, ...) with WORKERS=all.
#
#   TPU_NAME=dvl ZONE=us-central2-b ACCELERATOR=v4-8 \
#     launch/tpu_vm.sh create                 # once: make the VM
#   TPU_NAME=dvl ZONE=us-central2-b launch/tpu_vm.sh run CONFIG WORKDIR [--config.x=y ...]
#   TPU_NAME=dvl ZONE=us-central2-b launch/tpu_vm.sh fetch WORKDIR LOCAL_DIR
#   TPU_NAME=dvl ZONE=us-central2-b launch/tpu_vm.sh delete
#
# `run` copies this checkout (git ls-files) to ~/dot_vs_learned on the VM,
# installs it with jax[tpu] into ~/venv there, and runs the entry point in
# the foreground; WORKDIR is a path on the VM (WORKDIR/launch.log is its log).
# Data: put NCF files on the VM (gcloud compute tpus tpu-vm scp) and pass
# --config.data.dir=...; the VM may also download them (pinned checksums).
# WORKERS=all (pod slices): the same on every host, with --distributed (one
# process per host; process 0 writes); WORKDIR must then be storage all hosts
# see (e.g. a GCS bucket mounted with gcsfuse at the same path); each host
# logs to WORKDIR/launch.HOSTNAME.log.
# Needs: gcloud, authenticated, with a project set. RUNTIME defaults to
# tpu-ubuntu2204-base.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
tpu=(gcloud compute tpus tpu-vm)
cmd=${1:-}
shift || true
case $cmd in
  create)
    "${tpu[@]}" create "$TPU_NAME" --zone="$ZONE" \
      --accelerator-type="${ACCELERATOR:?set ACCELERATOR}" \
      --version="${RUNTIME:-tpu-ubuntu2204-base}" ;;
  run)
    [[ $# -ge 2 ]] || { sed -n '2,23p' "$0" >&2; exit 2; }
    config=$1 workdir=$2
    shift 2
    cd "$(dirname "$0")/.."
    archive=$(mktemp --suffix=.tar.gz)
    git ls-files -z | tar --null -czf "$archive" -T -
    "${tpu[@]}" scp "$archive" "$TPU_NAME:dvl.tar.gz" --zone="$ZONE" \
      --worker="${WORKERS:-0}"
    rm -f "$archive"
    workers=${WORKERS:-0} log="$workdir/launch.log"
    if [[ $workers == all ]]; then
      set -- "$@" --distributed
      log="$workdir/launch.\$(hostname).log"
    fi
    quoted=$(printf ' %q' "$@")
    "${tpu[@]}" ssh "$TPU_NAME" --zone="$ZONE" --worker="$workers" --command="set -euo pipefail
      mkdir -p ~/dot_vs_learned $workdir && tar -xzf ~/dvl.tar.gz -C ~/dot_vs_learned
      [[ -x ~/venv/bin/python ]] || { python3 -m venv ~/venv &&
        ~/venv/bin/pip install -q -e ~/dot_vs_learned'[ann,plots]' 'jax[tpu]'; }
      cd ~/dot_vs_learned
      ~/venv/bin/python -c 'import jax; print(jax.__version__, jax.local_devices())' | tee -a $log
      ~/venv/bin/python -m dot_vs_learned.main --config=$config --workdir=$workdir$quoted 2>&1 | tee -a $log" ;;
  fetch)
    [[ $# -eq 2 ]] || { sed -n '2,23p' "$0" >&2; exit 2; }
    "${tpu[@]}" scp --recurse "$TPU_NAME:$1" "$2" --zone="$ZONE" ;;
  delete)
    "${tpu[@]}" delete "$TPU_NAME" --zone="$ZONE" --quiet ;;
  *)
    sed -n '2,23p' "$0" >&2
    exit 2 ;;
esac
