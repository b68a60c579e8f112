"""Shared test setup: one JAX compilation cache for the whole session.

Most tests train a few epochs of tiny runs, each building its programs
anew; many of those programs are the same (same shapes, same config), and
compiling them again cost more than half of the suite's time. JAX's
persistent cache, in a folder made for this session and removed after it,
compiles each once. The environment variables carry it to the entry points
that tests start as subprocesses.
"""

import os
import shutil
import tempfile

import jax

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
