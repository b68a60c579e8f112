"""The run's workdir: resolved config, per-evaluation metrics, final results.

Files: `config.json` (the resolved config), `metrics.jsonl` (one line per
evaluation, appended as the run goes), `params.npz` (the final parameters of
every seed, for serving: retrieval.py), `results.json` (written last: its
presence marks a finished run). Whole-file writes go through a temporary file
and a rename, so a killed run never leaves a truncated JSON file behind. In a
multi-host run (distributed.py) only process 0 writes.
"""

import json
import os
import pathlib
import shutil

import numpy as np

from dot_vs_learned import atomic
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


def write_json(path, value) -> None:
  """atomic.write_json on process 0: never a truncated file."""
  if distributed.is_writer():
    atomic.write_json(path, value)


def check_unfinished(workdir, overwrite=False) -> None:
  """Raises WorkdirError if `workdir` holds a finished run to keep."""
  path = pathlib.Path(workdir) / RESULTS
  if path.exists() and not overwrite:
    raise WorkdirError(
        f"{workdir} holds a finished run ({RESULTS} exists); pass "
        "--overwrite to replace it or choose another --workdir.")


def prepare(workdir, config_dict, overwrite=False) -> pathlib.Path:
  """Creates the workdir, refusing to replace a finished run unless told to.

  An unfinished run of the same config (config.json equal, no failure.json)
  resumes: its metrics and checkpoints are kept, and training continues
  from the latest checkpoint. Any other unfinished run, and every run with
  `overwrite`, starts afresh: its files are removed.
  """
  workdir = pathlib.Path(workdir)
  check_unfinished(workdir, overwrite)
  distributed.sync(f"checked {workdir}")  # all have read before any change
  if distributed.is_writer():
    workdir.mkdir(parents=True, exist_ok=True)
    if overwrite or not _same_unfailed_run(workdir, config_dict):
      for name in (RESULTS, METRICS, METRICS + ".failed", FAILURE, PARAMS):
        (workdir / name).unlink(missing_ok=True)
      shutil.rmtree(workdir / CHECKPOINTS, ignore_errors=True)
    write_json(workdir / CONFIG, config_dict)
  distributed.sync(f"prepared {workdir}")
  return workdir


def same_config(workdir, config_dict) -> bool:
  """Whether the workdir's config.json holds `config_dict` (as JSON)."""
  path = pathlib.Path(workdir) / CONFIG
  if not path.exists():
    return False
  with open(path) as f:
    return json.load(f) == json.loads(json.dumps(config_dict))


def _same_unfailed_run(workdir, config_dict) -> bool:
  return (not (workdir / FAILURE).exists() and
          same_config(workdir, config_dict))


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


def drop_metrics_after(workdir, stage, epoch) -> None:
  """Removes the evaluations of `stage` ("" for a one-stage run) after
  `epoch`: those a killed run wrote after its last checkpoint, and a last
  line the kill cut short."""
  path = pathlib.Path(workdir) / METRICS
  if not path.exists():
    return
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  keep = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue
    if not (record.get("stage", "") == stage and record["epoch"] > epoch):
      keep.append(line if line.endswith("\n") else line + "\n")
  if keep != lines:
    write_atomically(path, lambda f: f.writelines(keep))


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
