"""Hyperparameter tuning of paper App. A.2, then the final runs (Figure 2).

Stage 1, on the tuning split (splits.holdout_split; config.data points at
it): each model's grid (search_space.py; for MF learning rate x lambda x
init scale x seeds), vmapped into one jitted program per shape (model, d, m
negatives), evaluated on the tuning test set every `eval.every` epochs. Each shape is a cell of sweep.py: rerun,
a finished shape is not recomputed. A point whose loss turns NaN or Inf is
marked failed (from that epoch on); the others go on.
Selection, on the tuning set only (search_space.select): the (shape,
hyperparameters, epoch) of the best mean HR@k over seeds (ties: NDCG@k);
on item lists (data.format="lists"), full-ranking recall@k (ties: NDCG@k).
Stage 2: the selected configuration trained on the final training split
(config.final.data) for every d of config.final.dims with final.num_seeds
seeds, each an NCF run (ncf.py) in `final_d{d}/`, evaluated on the test file;
EASE^R, which has no d and no randomness, makes one run in `final/`.

The point axis (hyperparameters x seeds) is sharded over all devices
(jax.sharding): one CPU, several GPUs or a TPU slice run the same command.
A program's points are padded to a multiple of the devices (repeats of its
last point, dropped from the record: distributed.padded_count).
"""

import copy
import pathlib
import re
import time

from absl import logging
import jax
import numpy as np

from dot_vs_learned import checkpoints
from dot_vs_learned import datasets
from dot_vs_learned import distributed
from dot_vs_learned import dot_baselines
from dot_vs_learned import evaluate
from dot_vs_learned import ials
from dot_vs_learned import ials_solve
from dot_vs_learned import loop
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import ncf_eval
from dot_vs_learned import results
from dot_vs_learned import search_space
from dot_vs_learned import sweep
from dot_vs_learned import train
from dot_vs_learned import tuning_config
from dot_vs_learned import workdir as workdir_lib

SELECTION = "selection.json"
EASE_GRID = "ease_grid.jsonl"  # EASE^R's lambdas done, when fitted one by one


def _sharded(name) -> bool:
  """Whether a model's program shards its points over the devices: iALS
  trains on one device (dot_baselines.py), the other models on all."""
  return name != "ials"


def _train_points(config, shape, data, grid, label, saver=None, keep=None):
  """Trains the points of `grid` as one vmapped, sharded program; returns
  per-evaluation metrics [{epoch, hr, ndcg, loss}] over its first `keep`
  points (all by default; the rest pad the grid to the devices), the
  epoch each of them failed at (0: never) and the number of devices.
  saver: a checkpoints.Checkpointer; the states and the curves so far are
  saved at every evaluation, and a program killed midway resumes from the
  latest."""
  keep = len(grid) if keep is None else keep
  values = {name: np.array([p[name] for p in grid]) for name in grid[0]}
  column = lambda name: values[name].astype(np.float32)
  if _sharded(shape.model.name):
    mesh = distributed.point_mesh(len(grid))
    init, run = train.make_train(shape, data, mesh)
    hps = train.Hparams(column("learning_rate"), column("reg"))
  else:
    mesh = None
    init, run = dot_baselines.make_ials_train(shape, data)
    hps = ials_solve.Hparams(column("reg"), column("alpha0"), column("nu"))
  num_devices = 1 if mesh is None else mesh.devices.size
  root = jax.random.key(config.train.seed)
  keys = jax.vmap(lambda s: jax.random.fold_in(root, s))(values["seed"])
  states = init(keys, stddevs=column("init_stddev"))
  names = curve_names(config, data)
  full = (None if evaluate.has_negatives(data) else
          ncf_eval.make_full_ranking(shape, data))

  def advance(states, num_epochs):
    states, metrics = run(states, num_epochs, hps)
    return states, dict(metrics, **(full(states.params) if full else {}))

  def record(done, metrics, _):
    return {"epoch": done, **{name: np.asarray(metrics[name])[:keep].tolist()
                              for name in (*names, "loss")}}

  def describe(r, failed_at):
    failed_at = failed_at[:keep]
    alive = np.asarray(r[names[0]])[failed_at == 0]
    best = f"{alive.max():.4f}" if alive.size else "-"
    return (f"best {names[0]} {best}; {(failed_at > 0).sum()} of "
            f"{keep} points failed; {num_devices} devices")

  outcome = loop.train(states, advance,
                       epochs=shape.train.epochs, every=config.eval.every,
                       record=record, label=f"[{label}] ", saver=saver,
                       describe=describe, nan="mark")
  return outcome.history, outcome.failed_at[:keep], num_devices


def tune_shape(config, data, name, dim, num_negatives, workdir=None):
  """Stage 1 for one shape; returns its cell record.

  The points train in programs of `sweep.points_per_program` points (0: all
  in one). One program is the fastest on accelerators; on a CPU, whose cache
  holds one set of tables better than many, smaller programs can be faster.
  With a workdir (and checkpoint.keep > 0) each program checkpoints at every
  evaluation under checkpoints/tune_*, and a killed sweep resumes there; the
  checkpoints of a shape are deleted once its cell is recorded.
  """
  shape = search_space.shape_config(config, name, dim, num_negatives)
  grid = search_space.points(config, name)
  if name == "ease":
    return _tune_ease(config, data, grid, workdir)
  size = config.sweep.points_per_program or len(grid)
  start, curves, failed, devices = time.time(), None, [], 1
  for first in range(0, len(grid), size):
    span = f"{first + 1}-{min(first + size, len(grid))}"
    label = f"{name} d={dim} m={num_negatives}"
    if size < len(grid):
      label += f" points {span}"
    points = grid[first:first + size]
    # A sharded program pads its points to the devices, and its
    # checkpoint names the padding (distributed.padding_index, padded_name).
    index = (distributed.padding_index(len(points)) if _sharded(name) else
             np.arange(len(points)))
    saver = None
    if workdir is not None and config.checkpoint.keep:
      saver = checkpoints.Checkpointer(
          workdir, distributed.padded_name(
              f"{checkpoint_prefix(name, dim, num_negatives)}_points{span}",
              len(points), len(index)),
          config.checkpoint.keep)
    try:
      part, part_failed, devices = _train_points(
          config, shape, data, [points[i] for i in index], label, saver,
          keep=len(points))
    finally:
      if saver:
        saver.close()
    failed.append(part_failed)
    if curves is None:
      curves = part
    else:
      for whole, piece in zip(curves, part):
        for key in (*curve_names(config, data), "loss"):
          whole[key] += piece[key]
  return {"model": name, "dim": dim, "num_negatives": num_negatives,
          "points": grid, "failed_at_epoch": np.concatenate(failed).tolist(),
          "curves": curves, "devices": devices,
          "seconds": time.time() - start}


def _tune_ease(config, data, grid, workdir=None):
  """EASE^R's shape: every lambda of the grid in one program, epoch 0 (one
  fit per lambda where B is solved in place; each lambda's metrics are then
  kept in workdir/ease_grid.jsonl, and a killed grid resumes)."""
  start, names = time.time(), curve_names(config, data)
  metrics = dot_baselines.ease_grid(
      [p["reg"] for p in grid], data, config,
      None if workdir is None else pathlib.Path(workdir) / EASE_GRID)
  curve = {"epoch": 0, **{name: metrics[name].tolist() for name in names},
           "loss": [0.0] * len(grid)}
  logging.info("[ease] lambda %s: %s %s", [p["reg"] for p in grid],
               names[0], np.round(metrics[names[0]], 4).tolist())
  return {"model": "ease", "dim": 0, "num_negatives": 0, "points": grid,
          "failed_at_epoch": [0] * len(grid), "curves": [curve],
          "devices": 1, "seconds": time.time() - start}


def curve_names(config, data) -> tuple[str, str]:
  """A tuning curve's metrics, the selection's (search_space.select): the
  sampled "hr" and "ndcg" (at eval.k) on NCF data, ncf_eval.selection's
  full-ranking names on item lists."""
  if evaluate.has_negatives(data):
    return "hr", "ndcg"
  return ncf_eval.selection(config, data)


def checkpoint_prefix(name, dim, num_negatives) -> str:
  """Checkpoint folders of a shape: checkpoints/{prefix}_points{a}-{b}."""
  return f"tune_{name}_d{dim}_m{num_negatives}"


def point_epochs_saved(workdir, name, dim, num_negatives) -> int:
  """Point-epochs of a shape that its programs' checkpoints hold (a killed
  sweep resumes there): each program's points x its latest saved epoch
  (a checkpoint's step is its epochs done)."""
  total = 0
  folder = pathlib.Path(workdir) / results.CHECKPOINTS
  for program in folder.glob(
      f"{checkpoint_prefix(name, dim, num_negatives)}_points*"):
    match = re.fullmatch(r".*_points(\d+)-(\d+)(_padded\d+)?", program.name)
    steps = [int(p.name) for p in program.iterdir() if p.name.isdigit()]
    if match and steps:
      total += (int(match[2]) - int(match[1]) + 1) * max(steps)
  return total


def final_config(config, chosen, dim):
  """The NCF config of a final run with the selected hyperparameters."""
  final = search_space.shape_config(config, chosen["model"], dim,
                                    chosen["num_negatives"])
  with final.unlocked():  # config_flags hands over a locked config
    del final.sweep, final.final
  final.experiment = "ncf"
  final.data = copy.deepcopy(config.final.data)
  search_space.apply(final, chosen)
  if chosen["model"] in ncf_config.CLOSED_FORM:
    final.train.num_seeds = 1  # no epochs, no randomness
    return final
  final.train.update(epochs=chosen["epochs"],
                     num_seeds=config.final.num_seeds)
  # Evaluated (and checkpointed) as often as the sweep was, or every
  # final.every epochs; the reported result is the selected epoch's, the last.
  final.eval.every = min(config.final.every or config.eval.every,
                         chosen["epochs"])
  return final


def final_runs(config, chosen) -> dict[int, str]:
  """{d: the final run's folder}: one per final.dims, or final/ for a
  model without d (EASE^R)."""
  if chosen["model"] == "ease":
    return {0: "final"}
  return {dim: f"final_d{dim}" for dim in config.final.dims}


def check_sizes(config, data, final_data) -> None:
  """What each program of the sweep and each final run asks of its data
  (ConfigError naming the field), before anything trains: eval.k within
  the ranked candidates and ncf_config.validate_sizes (full-ranking
  cut-offs, int32 stream positions, memory, a program's points counted as
  its seeds). A final run is checked for every model of the sweep, at its
  largest m, as any may be selected."""
  for name, dim, m in search_space.shapes(config):
    grid = search_space.points(config, name)
    shape = search_space.shape_config(config, name, dim, m)
    search_space.apply(shape, grid[0])
    shape.train.num_seeds = (1 if name in ncf_config.CLOSED_FORM else
                             min(config.sweep.points_per_program or
                                 len(grid), len(grid)))
    ncf_config.validate(shape, ncf_eval.num_candidates(data))
    ncf_config.validate_sizes(shape, data)
  for name in config.sweep.models:
    for dim in config.final.dims:
      final = search_space.shape_config(config, name, dim,
                                        max(config.sweep.num_negatives))
      search_space.apply(final, search_space.points(config, name)[0])
      final.data = copy.deepcopy(config.final.data)
      final.train.num_seeds = config.final.num_seeds
      ncf_config.validate(final, ncf_eval.num_candidates(final_data))
      ncf_config.validate_sizes(final, final_data)


def run(config, workdir, overwrite=False) -> dict:
  """Runs (or resumes) both stages into `workdir`."""
  tuning_config.validate(config)
  workdir_lib.check_path(workdir)
  # Bad data, tuning or final, fails here, before anything is written.
  data = datasets.load_dataset(config.data)
  check_sizes(config, data, datasets.load_dataset(config.final.data))
  with workdir_lib.use(
      workdir, config.to_dict(), overwrite,
      datasets.input_paths(config.data) +
      datasets.input_paths(config.final.data),
      outputs=(sweep.CELLS, SELECTION, EASE_GRID, "final_d*",
               "final")) as path:
    return _run(config, data, path)


def _run(config, data, workdir) -> dict:
  """Stage 1 (recorded shapes are skipped), selection, stage 2."""
  done = sweep.done_cells(workdir)
  shapes = search_space.shapes(config)
  for name, dim, m in shapes:
    cell = f"tune model={name} d={dim} m={m}"
    if cell not in done:
      done[cell] = dict(tune_shape(config, data, name, dim, m, workdir),
                        cell=cell)
      sweep.record_cell(workdir, done[cell])
    distributed.sync(f"recorded {cell}")
    checkpoints.remove(workdir, f"{checkpoint_prefix(name, dim, m)}_points*")
  records = [done[f"tune model={n} d={d} m={m}"] for n, d, m in shapes]
  names = curve_names(config, data)
  chosen = search_space.select(records, names, ncf_eval.selection(config,
                                                                  data))
  results.write_json(workdir / SELECTION, chosen)
  logging.info("selected on the tuning split: %s", chosen)
  finals = {}
  for dim, folder in final_runs(config, chosen).items():
    run_dir = workdir / folder
    finals[dim] = results.read_results(run_dir)
    if finals[dim] is None:
      # An unfinished final run of the same config resumes (checkpoints).
      finals[dim] = ncf.run(final_config(config, chosen, dim), run_dir)
  out = {"experiment": "tuning", "selected": chosen,
         "final": {str(d): r["final"] for d, r in finals.items()}}
  results.write_json(workdir / results.RESULTS, out)
  return out
