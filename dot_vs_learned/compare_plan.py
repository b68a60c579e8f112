"""The comparison's sweep plan (compare.py): each model's tuning config,
its grid, its share of the budget, and the ETA.

Each model of compare.models becomes a config of the tuning command
(tuning.py): its grid from compare.<model> (GMF, MLP and NeuMF keep NCF's
batch of 256 and 4 negatives and tune Adam's learning rate and the L2 on
the embeddings; iALS's alpha0 and EASE^R's lambda are given per item and
per mean item count, so the grids follow the data), the tuning split as
its data and the real split as its final data. compare.budget, epochs x
points over the whole sweep, is split equally among the models that train
in epochs: a model's epochs per point are its share over its points (E),
evaluated every E // compare.evaluations epochs (the epoch choices: at
least compare.evaluations of them; E itself is rounded down to a multiple
of that step).
"""

import copy
import json
import pathlib
import time

from absl import logging
import jax
import numpy as np

from dot_vs_learned import dot_baselines
from dot_vs_learned import ncf_config
from dot_vs_learned import results
from dot_vs_learned import search_space
from dot_vs_learned import train
from dot_vs_learned import tuning_config

PROBES = "eta_probes.json"  # {kind of devices: {model: seconds of one
# epoch of one point}}
LEARNED = ("gmf", "mlp", "neumf")  # NCF's recipe: Adam, batch 256, m 4


def split_name(config) -> str:
  """The tuning split's dataset name."""
  return f"{config.data.name}.holdout"


def _grid(config, name) -> dict:
  """The sweep fields of model `name` (tuning_config.default_config's sweep)."""
  c = config.compare
  if name == "mf":
    return dict(learning_rates=c.mf.learning_rates, regs=c.mf.regs,
                num_negatives=c.mf.num_negatives, dims=c.mf.dims,
                init_stddevs=(config.train.init_stddev,))
  if name in LEARNED:  # NeuMF: d = 3k, the multiple of 3 below
    dims = tuple(3 * (d // 3) if name == "neumf" else d for d in c.ncf.dims)
    return dict(learning_rates=c.ncf.learning_rates, regs=c.ncf.regs,
                num_negatives=(4,), dims=dims, init_stddevs=(0.01,))
  if name == "ials":
    return dict(dims=c.ials.dims, init_stddevs=(config.train.init_stddev,))
  return {}


def trained(config) -> list[str]:
  """The models of compare.models that train in epochs (share the budget)."""
  return [m for m in config.compare.models if m not in ncf_config.CLOSED_FORM]


def grid_size(config, name) -> int:
  """Points x shapes of model `name`'s grid (search_space counts the same
  from the tuning config)."""
  c = config.compare
  sizes = {"mf": (c.mf.learning_rates, c.mf.regs, c.mf.num_negatives,
                  c.mf.dims),
           "ials": (c.ials.regs, c.ials.alpha0_totals, c.ials.dims),
           "ease": (c.ease.regs_per_count,)}.get(
               name, (c.ncf.learning_rates, c.ncf.regs, c.ncf.dims))
  return int(np.prod([len(values) for values in sizes]))


def _scaled(values, scale) -> tuple:
  """values x scale, to 3 significant digits (readable grids)."""
  return tuple(float(f"{v * scale:.3g}") for v in values)


def model_config(config, name, data, split_dir):
  """The tuning command's config (tuning.py) for model `name`: its grid,
  the tuning split as data, the real split as final.data (its epochs are
  set by plan)."""
  t = tuning_config.default_config()
  for section in ("model", "train", "eval", "ials", "pretrain",
                  "checkpoint"):
    t[section] = copy.deepcopy(config[section])
  t.data = copy.deepcopy(config.data)
  t.data.update(dir=str(split_dir), name=split_name(config))
  t.final.data = copy.deepcopy(config.data)
  t.final.num_seeds = config.compare.num_seeds
  if name in LEARNED:
    ncf_config.use_ncf_recipe(t, name)
    t.train.optimizer = config.compare.ncf.optimizer
  t.sweep.update(models=(name,), num_seeds=1, **_grid(config, name))
  c = config.compare
  if name == "ials":
    t.sweep.ials.update(regs=tuple(c.ials.regs), alpha0s=_scaled(
        c.ials.alpha0_totals, 1 / data.num_items), nus=(t.ials.nu,))
  if name == "ease":
    mean_count = len(data.train_items) / data.num_items
    t.sweep.ease.regs = _scaled(c.ease.regs_per_count, mean_count)
  return t


def plan(config, data, split_dir) -> dict:
  """{model: its tuning config with epochs and eval.every set}: the budget
  split equally among the models that train in epochs."""
  c, training = config.compare, trained(config)
  out = {}
  for name in c.models:
    if name == "popularity":
      continue
    t = model_config(config, name, data, split_dir)
    if name in training:  # compare.validate: per_point >= 1
      per_point = c.budget // len(training) // grid_size(config, name)
      every = max(1, per_point // c.evaluations)
      t.train.epochs = every * (per_point // every)
      t.eval.every = t.final.every = every
    out[name] = t
  return out


def _probe_seconds(t, name, data) -> float:
  """Seconds of one steady epoch (and its evaluation) of one point of the
  model's first shape: run twice, the second timed."""
  _, dim, m = search_space.shapes(t)[0]
  shape = search_space.shape_config(t, name, dim, m)
  shape.train.num_seeds = 1
  make = (dot_baselines.make_ials_train if name == "ials" else
          train.make_train)
  init, run = make(shape, data)
  states, _ = run(init(jax.random.split(jax.random.key(0), 1)), 1)
  jax.block_until_ready(states)
  start = time.time()
  jax.block_until_ready(run(states, 1))
  return time.time() - start


def eta(probes, point_epochs) -> float:
  """Seconds of the given point-epochs {model: count} at the probes
  {model: seconds of one epoch of one point}; models without a probe
  (EASE^R, popularity: no epochs) count nothing."""
  return sum(probes.get(name, 0.0) * count
             for name, count in point_epochs.items())


def workdir_probes(plans, data, workdir) -> dict:
  """{model: seconds of one epoch of one point} for the models of `plans`
  that train in epochs, kept in workdir/eta_probes.json by kind of devices:
  a resumed command reuses those of its first start on the same kind
  (probing again costs two epochs of each model: minutes on ML-1M),
  another kind probes afresh."""
  path = pathlib.Path(workdir) / PROBES
  machine = f"{len(jax.devices())} x {jax.devices()[0].device_kind}"
  by_machine = _recorded_probes(path)
  probes = by_machine.setdefault(machine, {})
  for name, t in plans.items():
    if name in ncf_config.CLOSED_FORM:
      continue
    recorded = name in probes
    if not recorded:
      probes[name] = _probe_seconds(t, name, data)
    logging.info("ETA probe%s: one %s epoch of one point %.2f s",
                 " (recorded by an earlier start)" if recorded else "", name,
                 probes[name])
  results.write_json(path, by_machine)
  return probes


def _recorded_probes(path) -> dict:
  """eta_probes.json as written: {kind of devices: {model: seconds}}; {}
  (every model probed again) if missing or not in that form."""
  if not path.exists():
    return {}
  try:
    recorded = json.loads(path.read_text())
    if all(isinstance(seconds, (int, float)) and seconds >= 0
           for probes in recorded.values() for seconds in probes.values()):
      return recorded
  except (ValueError, AttributeError):
    pass
  logging.warning("%s: not the ETA probes this command writes; probing "
                  "again", path)
  return {}
