"""Resumable grids of cells: each finished cell is recorded once, never redone.

A grid's workdir holds `config.json` and `cells.jsonl`, one JSON line per
finished cell, appended and fsynced as the cell ends. Rerunning the same
command with the same config skips the recorded cells, so a killed grid
resumes where it stopped (the workdir's rules: workdir.py). `results.json`,
written last, marks the whole grid done.
"""

import pathlib

from dot_vs_learned import results

CELLS = "cells.jsonl"


def done_cells(workdir) -> dict[str, dict]:
  """{cell name: record} of the cells recorded so far.

  A last line cut short by a kill is ignored (its cell runs again).
  """
  return {record["cell"]: record for record in
          results.read_json_lines(pathlib.Path(workdir) / CELLS)}


def record_cell(workdir, record) -> None:
  """Appends a finished cell (a dict with a unique "cell" name)."""
  results.append_json_line(pathlib.Path(workdir) / CELLS, record)
