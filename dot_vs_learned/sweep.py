"""Resumable grids of cells: each finished cell is recorded once, never redone.

A grid's workdir holds `config.json` and `cells.jsonl`, one JSON line per
finished cell, appended and fsynced as the cell ends. Rerunning the same
command with the same config skips the recorded cells, so a killed grid
resumes where it stopped; a different config in the same workdir is refused
(or replaced with --overwrite). `results.json`, written last, marks the whole
grid done.
"""

import json
import pathlib

from dot_vs_learned import distributed
from dot_vs_learned import results

CELLS = "cells.jsonl"


def open_grid(workdir, config_dict, overwrite=False) -> pathlib.Path:
  """Creates or resumes a grid workdir; returns its path.

  Raises results.WorkdirError if the workdir holds a finished grid or a grid
  of another config, unless `overwrite`, which starts afresh.
  """
  workdir = pathlib.Path(workdir)
  config_path = workdir / results.CONFIG
  if not overwrite:
    results.check_unfinished(workdir, overwrite)
    if config_path.exists() and not results.same_config(workdir,
                                                         config_dict):
      raise results.WorkdirError(
          f"{workdir} holds a grid of another config ({config_path}); "
          "use another --workdir or pass --overwrite to replace it.")
  distributed.sync(f"checked {workdir}")  # all have read before any change
  if distributed.is_writer():
    names = (CELLS, results.RESULTS, results.FAILURE) if overwrite else (
        results.FAILURE,)
    for name in names:
      (workdir / name).unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    results.write_json(config_path, config_dict)
  distributed.sync(f"opened {workdir}")
  return workdir


def done_cells(workdir) -> dict[str, dict]:
  """{cell name: record} of the cells recorded so far.

  A last line cut short by a kill is ignored (its cell runs again).
  """
  path = pathlib.Path(workdir) / CELLS
  if not path.exists():
    return {}
  records = {}
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except json.JSONDecodeError:
        continue
      records[record["cell"]] = record
  return records


def record_cell(workdir, record) -> None:
  """Appends a finished cell (a dict with a unique "cell" name)."""
  results.append_json_line(pathlib.Path(workdir) / CELLS, record)
