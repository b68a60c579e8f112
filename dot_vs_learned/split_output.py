"""A split's files: checks of where they go, before any reading, then the
NCF files and the id maps, written atomically (splits.py, item_lists.py)."""

import os
import pathlib
import tempfile

import numpy as np

from dot_vs_learned import atomic
from dot_vs_learned import data
from dot_vs_learned.data import DataError

MAPS = ("user_map.tsv", "item_map.tsv")  # `{name}.user_map.tsv` and so on


def check_output(out_dir, name, seed, files=None, inputs=(),
                 fresh=False) -> None:
  """Refuses, before any reading, what would fail only when writing, an
  output that would replace one of `inputs`, and with `fresh` any existing
  output. `files`: the names to write (default the NCF files and id maps of
  `name`)."""
  if not isinstance(seed, (int, np.integer)) or seed < 0:
    raise DataError(f"seed={seed!r}: must be an integer >= 0")
  if not name or "/" in name or "\0" in name:
    raise DataError(f"name={name!r}: must be a file name (not empty, no '/')")
  if not str(out_dir).strip():  # pathlib would make "" the current folder
    raise DataError(f"out_dir={out_dir}: an empty path; give a folder ('.' "
                    "for this one)")
  out = pathlib.Path(out_dir)
  if "\0" in str(out):
    raise DataError(f"out_dir={str(out)!r}: holds a NUL character")
  existing = next(p for p in (out, *out.parents) if os.path.exists(p))
  if not existing.is_dir():
    raise DataError(f"out_dir={out}: {existing} is not a directory")
  try:  # a probe: permissions alone miss read-only mounts, /proc, root
    fd, probe = tempfile.mkstemp(dir=existing, prefix=".splits-probe-")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise DataError(f"out_dir={out}: cannot write in {existing}: "
                    f"{e.strerror}") from None
  real = {os.path.realpath(path): path for path in inputs}  # links followed
  for file in files or [f"{name}.{suffix}" for suffix in data.SUFFIXES + MAPS]:
    target = out / file
    if fresh and os.path.lexists(target):
      raise DataError(f"out_dir={out}: {file} exists; remove it or choose "
                      "another --out_dir or name")
    if os.path.lexists(target) and not target.is_file():
      raise DataError(f"out_dir={out}: {target.name} exists and is not a "
                      "regular file")
    lost = real.get(os.path.join(os.path.realpath(out), file))
    if lost:  # writing replaces the entry out_dir/file, which is an input
      raise DataError(f"out_dir={out}: {file} would overwrite the input {lost}")


def write_id_maps(out_dir, name, id_maps) -> None:
  """`{name}.user_map.tsv`, `{name}.item_map.tsv`: `original<TAB>number`."""
  for suffix, ids in zip(MAPS, id_maps):
    text = "".join(f"{raw}\t{new}\n" for new, raw in enumerate(ids))
    atomic.write(pathlib.Path(out_dir) / f"{name}.{suffix}",
                 lambda f, b=text.encode(): f.write(b), mode="wb")


def write_split(split, out_dir, name, train_times, test_times, id_maps=()):
  """Writes the NCF files (and id maps); returns the files loaded back."""
  try:
    data.write_ncf(split, out_dir, name, train_timestamps=train_times,
                   test_timestamps=test_times)
    write_id_maps(out_dir, name, id_maps)
  except OSError as e:
    raise DataError(f"out_dir={out_dir}: cannot write the split: {e}") from None
  return data.load_ncf(out_dir, name)
