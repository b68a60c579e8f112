"""Shared test setup: one JAX compilation cache for the whole session.

Most tests train a few epochs of tiny runs, each building its programs
anew; many of those programs are the same (same shapes, same config), and
compiling them again cost more than half of the suite's time. JAX's
persistent cache, in a folder made for this session and removed after it,
compiles each once. The environment variables carry it to the entry points
that tests start as subprocesses.

The programs are also compiled at XLA's backend optimization level 0: on
the CPU that compiles a seeded init 6x faster (9 s to 1.4 s), and the
tests' data are too small for the slower code to matter. Set before JAX
starts its backend, XLA_FLAGS reaches subprocesses too (tests that add
flags for a subprocess keep it, so both sides compile alike).
"""

import os
import shutil
import tempfile

_OPT_LEVEL = "--xla_backend_optimization_level=0"
if _OPT_LEVEL not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = " ".join(
      f for f in (os.environ.get("XLA_FLAGS", ""), _OPT_LEVEL) if f)

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

_SETTINGS = {"jax_compilation_cache_dir": None,
             "jax_persistent_cache_min_compile_time_secs": 0,
             "jax_persistent_cache_min_entry_size_bytes": 0}


def pytest_configure(config):
  del config
  folder = tempfile.mkdtemp(prefix="dot_vs_learned-jax-cache-")
  _SETTINGS["jax_compilation_cache_dir"] = folder
  for name, value in _SETTINGS.items():
    jax.config.update(name, value)
    os.environ[name.upper()] = str(value)


def pytest_unconfigure(config):
  del config
  folder = _SETTINGS["jax_compilation_cache_dir"]
  if folder:
    shutil.rmtree(folder, ignore_errors=True)
