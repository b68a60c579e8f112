"""The device check's first section: what ran, on what, from which code.

The fields of every run's results.json (summary.environment: code version,
JAX, backend, device, date), plus what a lent machine makes worth knowing:
the versions of the packages the suite uses and where ml_collections and
PyYAML were imported from (the machine's own or the carried wheels), the
device's memory, XLA_FLAGS, and a hash of the sources, since no git history
travels with the working tree to a lent machine.
"""

import hashlib
import importlib.metadata
import importlib.util
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
            "ml-collections", "numpy", "absl-py", "pyyaml")


def source_sha256() -> str:
  """One hash of the package, configs and benchmarks: the code version
  where no git history travels with the tree."""
  digest = hashlib.sha256()
  for path in sorted(p for folder in ("dot_vs_learned", "configs",
                                      "benchmarks")
                     for p in (REPO / folder).glob("*.py")):
    digest.update(path.relative_to(REPO).as_posix().encode())
    digest.update(path.read_bytes())
  return digest.hexdigest()[:16]


def package_versions() -> dict[str, str]:
  """Installed versions of PACKAGES and of any JAX CUDA or ROCm plugin."""
  versions = {}
  for dist in importlib.metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-")
    if name in PACKAGES or name.startswith(("jax-cuda", "jax-rocm")):
      versions.setdefault(name, dist.version)
  return versions


def environment(spec, report):
  """Versions, backend, device kind and memory, where packages come from."""
  del spec, report
  import jax  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import summary  # pylint: disable=g-import-not-at-top
  stats = jax.devices()[0].memory_stats() or {}
  try:  # versions, and nvidia-smi's view of the GPUs
    info = jax.print_environment_info(return_string=True)
  except Exception as e:  # pylint: disable=broad-except
    info = f"{type(e).__name__}: {e}"
  return dict(
      summary.environment(),
      memory_gib=stats.get("bytes_limit", 0) / 2**30 or None,
      memory_stats={k: stats[k] for k in ("bytes_limit", "bytes_in_use",
                                          "peak_bytes_in_use") if k in stats},
      versions=package_versions(), python=sys.version.split()[0],
      modules={m: getattr(importlib.util.find_spec(m), "origin", None)
               for m in ("jax", "ml_collections", "yaml")},
      xla_flags=os.environ.get("XLA_FLAGS", ""),
      source_sha256=source_sha256(), environment_info=info)
