"""Whole-file writes by a temporary file and a rename, and fsynced appends.

A killed writer never leaves a truncated file under the final name. Nothing
here imports JAX: the data loaders and the split builder use it too. In a
multi-host run only process 0 writes; results.py checks that before calling.
"""

import json
import os
import pathlib
import tempfile


def make_temp(directory, prefix, suffix=""):
  """tempfile.mkstemp with the permissions of a plain new file (0666 less
  the umask) instead of 0600, since it becomes a result by a rename."""
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
  umask = os.umask(0)
  os.umask(umask)
  os.fchmod(fd, 0o666 & ~umask)
  return fd, tmp


def write(path, write_fn, mode="w") -> None:
  """Calls write_fn(file) on a temporary file in the same folder, then
  renames it to `path`."""
  path = pathlib.Path(path)
  fd, tmp = make_temp(path.parent, f".{path.name}.")
  try:
    with os.fdopen(fd, mode) as f:
      write_fn(f)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_json(path, value) -> None:
  """Writes `value` as indented, key-sorted JSON, atomically."""
  def dump(f):
    json.dump(value, f, indent=2, sort_keys=True)
    f.write("\n")
  write(path, dump)


def append_json_line(path, record) -> None:
  """Appends `record` as one JSON line and flushes it to disk. A last line
  cut short by a kill is ended first, so the record starts a line."""
  path = pathlib.Path(path)
  if path.exists() and path.stat().st_size:
    with open(path, "rb+") as f:
      f.seek(-1, 2)
      if f.read(1) != b"\n":
        f.write(b"\n")
  with open(path, "a") as f:
    f.write(json.dumps(record, sort_keys=True) + "\n")
    f.flush()
    os.fsync(f.fileno())
