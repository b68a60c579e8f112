"""The run's workdir: resolved config, per-evaluation metrics, final results.

Files: `config.json` (the resolved config), `metrics.jsonl` (one line per
evaluation, appended as the run goes), `params.npz` (the final parameters of
every seed, for serving: retrieval.py), `results.json` (written last: its
presence marks a finished run). Whole-file writes go through a temporary file
and a rename, so a killed run never leaves a truncated JSON file behind. In a
multi-host run (distributed.py) only process 0 writes.
"""

import csv
import io
import json
import os
import pathlib

import numpy as np

from dot_vs_learned import atomic
from dot_vs_learned import checks
from dot_vs_learned import distributed

CONFIG = "config.json"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
FAILURE = "failure.json"
PARAMS = "params.npz"
CHECKPOINTS = "checkpoints"  # checkpoints.py


class WorkdirError(RuntimeError):
  """The workdir holds a finished run the caller did not ask to replace, or
  lacks the finished run the caller needs."""


def write_atomically(path, write, mode="w") -> None:
  """atomic.write on process 0: write(file) on a temporary file, renamed."""
  if distributed.is_writer():
    atomic.write(path, write, mode)


def csv_text(rows) -> str:
  """Rows (lists of cells) as CSV text."""
  text = io.StringIO()
  csv.writer(text).writerows(rows)
  return text.getvalue()


def write_json(path, value) -> None:
  """atomic.write_json on process 0: never a truncated file."""
  if distributed.is_writer():
    atomic.write_json(path, value)


def mark_failed(workdir, error) -> None:
  """Records why a run failed; its metrics so far become metrics.jsonl.failed.

  No file of a failed run keeps a name that reads as a result.
  """
  workdir = pathlib.Path(workdir)
  if not distributed.is_writer():
    return
  if (workdir / METRICS).exists():
    os.replace(workdir / METRICS, workdir / (METRICS + ".failed"))
  write_json(workdir / FAILURE, {"error": type(error).__name__,
                                 "message": str(error)})


def summarize(per_seed) -> dict:
  """Mean, std and the values of a metric over seeds, for JSON."""
  values = np.asarray(per_seed, dtype=np.float64)
  return {"mean": float(values.mean()), "std": float(values.std()),
          "per_seed": values.tolist()}


def append_json_line(path, record) -> None:
  """atomic.append_json_line on process 0."""
  if distributed.is_writer():
    atomic.append_json_line(path, record)


def append_metrics(workdir, record) -> None:
  """Appends one evaluation to metrics.jsonl."""
  append_json_line(pathlib.Path(workdir) / METRICS, record)


class JSONFileError(ValueError):
  """A JSON file that cannot be read or holds no object; its message says
  why, without the path, for the caller to name the file or its flag."""


def read_json_object(path) -> dict:
  """The JSON object in `path`: a run's config.json, results.json,
  inputs.json or failure.json. JSONFileError if it is missing, unreadable,
  not JSON or not an object."""
  try:
    value = json.loads(pathlib.Path(path).read_text())
  except (OSError, ValueError) as e:  # ValueError: not JSON, not UTF-8
    reason = checks.shorten(" ".join(str(e).split()), 200)
    raise JSONFileError(f"unreadable ({type(e).__name__}: {reason})"
                        ) from None
  if not isinstance(value, dict):
    raise JSONFileError(f"a JSON {type(value).__name__}, not an object")
  return value


def read_results(run_dir) -> dict | None:
  """A finished run's results.json; None if the run has not finished.
  WorkdirError naming the file if it cannot be read, rather than train the
  run again over it."""
  path = pathlib.Path(run_dir) / RESULTS
  if not os.path.lexists(path):
    return None
  try:
    return read_json_object(path)
  except JSONFileError as e:
    raise WorkdirError(f"{path}: {e}; remove {run_dir} to run it again, "
                       "or pass --overwrite to run everything again") from None


def read_json_lines(path) -> list[dict]:
  """The records of a JSON-lines file ([] if none); a line cut short by a
  kill is skipped."""
  path = pathlib.Path(path)
  if not path.exists():
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return records


def replace_metrics(workdir, stage, records) -> None:
  """Makes `records` the evaluations of `stage` ("" for a one-stage run) in
  metrics.jsonl, after those of the other stages: the lines of a restored
  checkpoint replace what a killed run wrote after it, a line the kill cut
  short, or a deleted file."""
  path = pathlib.Path(workdir) / METRICS
  kept = [r for r in read_json_lines(path) if r.get("stage", "") != stage]
  lines = [json.dumps(r, sort_keys=True) + "\n" for r in kept + records]
  if lines or path.exists():
    write_atomically(path, lambda f: f.writelines(lines))


def read_metrics(workdir) -> list[dict]:
  """The evaluations recorded so far."""
  with open(pathlib.Path(workdir) / METRICS) as f:
    return [json.loads(line) for line in f if line.strip()]


def save_params(workdir, flat) -> None:
  """Writes {path: array with a leading seed axis} to params.npz atomically."""
  write_atomically(pathlib.Path(workdir) / PARAMS,
                    lambda f: np.savez(f, **flat), "wb")


def load_params(workdir) -> dict[str, np.ndarray]:
  """The arrays of params.npz; WorkdirError if the run has none."""
  path = pathlib.Path(workdir) / PARAMS
  if not (pathlib.Path(workdir) / RESULTS).exists() or not path.exists():
    raise WorkdirError(f"{workdir} holds no finished run with parameters "
                       f"({RESULTS} and {PARAMS}); train one first with "
                       "python -m dot_vs_learned.main")
  with np.load(path) as arrays:
    return {name: arrays[name] for name in arrays.files}
