"""Each model's search space in the tuning sweep, the selection, and how the
selected point sets a run.

A shape (model, d, m) is one jitted program; its points are vmapped. A
point is a dict of hyperparameters and a "seed":
  mf, gmf, mlp, neumf: learning_rate x reg x init_stddev (swept for MF
      only) from sweep.learning_rates, sweep.regs, sweep.init_stddevs; a
      shape per d in sweep.dims and m in sweep.num_negatives;
  ials: reg x alpha0 x nu x init_stddev from sweep.ials.regs,
      sweep.ials.alpha0s, sweep.ials.nus and sweep.init_stddevs; a shape
      per d (m = 0: it samples no negatives);
  ease: reg from sweep.ease.regs; one shape (d = m = 0); no seeds (it has
      no randomness) and no epochs (epoch 0: closed form).
Every model draws sweep.num_seeds seeds except EASE^R.
"""

import copy
import itertools

import ml_collections
import numpy as np

from dot_vs_learned import checks
from dot_vs_learned import ncf_config

MODELS = ("mf", "gmf", "mlp", "neumf", "ials", "ease")  # that can be tuned
# Where a point's hyperparameter goes in a run's config.
FIELDS = {"learning_rate": ("train", "learning_rate"),
          "reg": ("train", "reg"), "init_stddev": ("train", "init_stddev"),
          "alpha0": ("ials", "alpha0"), "nu": ("ials", "nu")}


def add_sections(config) -> None:
  """Adds sweep.ials and sweep.ease: the baselines' own grids (their
  lambdas live on other scales than MF's)."""
  config.sweep.ials = ml_collections.ConfigDict(dict(
      regs=(0.001, 0.003, 0.007, 0.02),  # lambda; ML-1M's published: 0.007
      alpha0s=(0.1, 0.3, 1.0),  # unobserved weight; ML-1M's: 0.3
      nus=(1.0,),  # exponent of the frequency-scaled L2; Rendle et al.: 1
  ))
  config.sweep.ease = ml_collections.ConfigDict(dict(
      regs=(100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0),  # lambda
  ))


def validate(config) -> None:
  """ConfigError naming the first sweep field out of range."""
  s, check = config.sweep, checks.check
  check(len(s.models) > 0 and set(s.models) <= set(MODELS), "sweep.models",
        s.models, f"needs values among {MODELS}")
  for field, positive in (("ials.regs", True), ("ials.alpha0s", False),
                          ("ials.nus", False), ("ease.regs", True)):
    section, name = field.split(".")
    values = s[section][name]
    check(len(values) > 0 and all(
        checks.is_number(v) and (v > 0 if positive else v >= 0)
        for v in values), f"sweep.{field}", values,
        f"needs finite values {'> 0' if positive else '>= 0'}")
  check(len(s.init_stddevs) == 1 or set(s.models) <= {"mf", "ials"},
        "sweep.init_stddevs", s.init_stddevs, "only MF and iALS have a "
        "sweepable init scale (NCF models: N(0, 0.01^2))")


def shapes(config) -> list[tuple[str, int, int]]:
  """(model, d, m) of every program of the sweep, in order."""
  s, out = config.sweep, []
  for name in s.models:
    if name == "ease":
      out.append((name, 0, 0))
    elif name == "ials":
      out += [(name, dim, 0) for dim in s.dims]
    else:
      out += [(name, dim, m) for dim in s.dims for m in s.num_negatives]
  return out


def points(config, name) -> list[dict]:
  """The vmapped axis of a shape of model `name`: hyperparameters x seeds."""
  s = config.sweep
  if name == "ease":
    return [{"reg": float(reg), "seed": 0} for reg in s.ease.regs]
  if name == "ials":
    axes = {"reg": s.ials.regs, "alpha0": s.ials.alpha0s, "nu": s.ials.nus,
            "init_stddev": s.init_stddevs}
  else:
    axes = {"learning_rate": s.learning_rates, "reg": s.regs,
            "init_stddev": s.init_stddevs}
  return [dict(zip(axes, map(float, values)), seed=seed)
          for *values, seed in itertools.product(*axes.values(),
                                                 range(s.num_seeds))]


def hyperparameters(point) -> dict:
  """A point without its seed."""
  return {name: value for name, value in point.items() if name != "seed"}


def select(records, names=("hr", "ndcg"), labels=("hr@10", "ndcg@10")) -> dict:
  """The best (shape, hyperparameters, epoch) by the mean over seeds of the
  curves' `names[0]` (ties: names[1]); failed points never win. The
  selection's tuning values are named "tuning_" + labels."""
  best = None
  for r in records:
    configs = {}  # hyperparameters -> the indices of their seeds' points
    for j, p in enumerate(r["points"]):
      key = tuple(hyperparameters(p).items())
      configs.setdefault(key, []).append(j)
    for key, js in configs.items():
      for c in r["curves"]:
        if any(0 < r["failed_at_epoch"][j] <= c["epoch"] for j in js):
          continue
        score = tuple(float(np.mean([c[name][j] for j in js]))
                      for name in names)
        if best is None or score > best[0]:
          best = (score, dict(model=r["model"], dim=r["dim"],
                              num_negatives=r["num_negatives"], **dict(key),
                              epochs=c["epoch"]))
  if best is None:
    raise FloatingPointError("every point of the sweep diverged")
  score, chosen = best
  return dict(chosen, **{f"tuning_{label}": value
                         for label, value in zip(labels, score)})


def apply(config, chosen) -> None:
  """Sets the config fields of the hyperparameters in `chosen`."""
  for name, value in chosen.items():
    if name in FIELDS:
      section, field = FIELDS[name]
      config[section][field] = value


def shape_config(config, name, dim, num_negatives):
  """The NCF config of one shape (d and m kept where the model has none)."""
  shape = copy.deepcopy(config)
  shape.model.name = name
  if dim:
    shape.model.dim = dim
  if num_negatives:
    shape.train.num_negatives = num_negatives
  if (name not in ncf_config.SOLVED and
      shape.train.optimizer not in ncf_config.GRADIENT_OPTIMIZERS):
    shape.train.optimizer = "adam"
  return shape
