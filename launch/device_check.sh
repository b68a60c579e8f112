#!/usr/bin/env bash
# The prepared device check (benchmarks/device_check.py) on a lent GPU machine.
#
#   launch/device_check.sh OUT_DIR [--quick] [--deadline_s=S] [--sections=a,b]
#
# Installs what the machine lacks from device_payload/wheels (docs/gpu.md
# builds the payload) with pip --no-deps --no-index --target into
# device_payload/site-<python version>: nothing outside that folder changes
# and the installed JAX is never touched; a wheel whose module already
# imports is skipped. Then runs the check on device_payload/ml-1m.
# Environment: PYTHON (default: the first of python, python3 that imports
# jax), PAYLOAD (default device_payload), FORCE_INSTALL (module names to
# install even if they import, e.g. "ml_collections"). Output: OUT_DIR.
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
out=$1
shift
if [[ $out != /* ]]; then
  out=$PWD/$out  # the script runs from the repository root
fi
cd "$(dirname "$0")/.."
payload=${PAYLOAD:-device_payload}
py=${PYTHON:-}
if [[ -z $py ]]; then
  for candidate in python python3; do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c "import jax" 2>/dev/null; then
      py=$candidate
      break
    fi
  done
fi
if [[ -z $py ]]; then
  echo "$0: no python on PATH imports jax; set PYTHON" >&2
  exit 1
fi
site=$payload/site-$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')
missing=()
shopt -s nullglob
for wheel in "$payload"/wheels/*.whl; do
  case $(basename "$wheel" | tr '[:upper:]' '[:lower:]') in
    ml_collections-*) module=ml_collections ;;
    pyyaml-*) module=yaml ;;
    *) module="" ;;
  esac
  if [[ -z $module || " ${FORCE_INSTALL:-} " == *" $module "* ]] ||
      ! PYTHONPATH=$site "$py" -c "import $module" 2>/dev/null; then
    missing+=("$wheel")
  fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing into $site: ${missing[*]##*/}"
  if "$py" -m pip --version >/dev/null 2>&1; then
    "$py" -m pip install --quiet --no-deps --no-index --upgrade \
      --target "$site" "${missing[@]}"
  else  # no pip: a wheel is a zip of its installed files
    "$py" - "$site" "${missing[@]}" <<'EOF'
import sys, zipfile
for wheel in sys.argv[2:]:
  zipfile.ZipFile(wheel).extractall(sys.argv[1])
EOF
  fi
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
if [[ -d $site ]]; then
  PYTHONPATH=$PYTHONPATH:$site
fi
echo "$py: $("$py" -c 'import sys; print(sys.version.split()[0])'); PYTHONPATH=$PYTHONPATH"
exec "$py" benchmarks/device_check.py --out="$out" \
  --data_dir="$payload/ml-1m" "$@"
