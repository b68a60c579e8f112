"""The tuning command's config (tuning.py): App. A.2's coarse pass on ML-1M
as the defaults, the sweep and final sections, and their validation."""

import copy

import ml_collections

from dot_vs_learned import checks
from dot_vs_learned import ncf_config
from dot_vs_learned import search_space


def default_config():
  """ML-1M's coarse pass of App. A.2 (lambda searched together with lr, m)."""
  config = ncf_config.default_config()
  config.experiment = "tuning"
  config.data.name = "ml-1m.holdout"  # made by splits --holdout_of
  config.model.dim = 64
  config.train.epochs = 128
  config.eval.every = 16
  config.sweep = ml_collections.ConfigDict(dict(
      learning_rates=(0.001, 0.003, 0.01),  # lr grid (vmapped)
      regs=(0.0, 0.001, 0.003, 0.01),  # lambda grid (vmapped)
      init_stddevs=(0.1,),  # sigma grid (vmapped)
      num_negatives=(4, 8, 16),  # m grid (a program each)
      dims=(64,),  # d grid (a program each)
      models=("mf",),  # models swept (mf, gmf, mlp, neumf, ials, ease)
      num_seeds=1,  # seeds per grid point
      points_per_program=0,  # 0: every point of a shape in one program
  ))
  search_space.add_sections(config)
  config.final = ml_collections.ConfigDict(dict(
      # The final runs' data (fields as in data): the real split.
      data=ml_collections.ConfigDict(dict(name="ml-1m", format="ncf", dir="",
                                          cache_dir="",
                                          download=True, seed=0,
                                          num_users=2000, num_items=1000)),
      dims=(16, 32, 64, 96, 128, 192),  # final runs, one per d (Fig. 2)
      num_seeds=8,  # seeds of each final run; App. A.2: 8
      every=0,  # evaluate (and checkpoint) final runs every N epochs; 0:
      # as eval.every
  ))
  return config


def validate(config) -> None:
  s, check = config.sweep, checks.check
  for field in ("learning_rates", "init_stddevs", "num_negatives", "dims",
                "models"):
    check(len(s[field]) > 0, f"sweep.{field}", s[field], "needs a value")
  check(all(checks.is_number(v) and v > 0 for v in s.learning_rates),
        "sweep.learning_rates", s.learning_rates, "must be finite and > 0")
  check(len(s.regs) > 0 and all(checks.is_number(v) and v >= 0
                                for v in s.regs), "sweep.regs",
        s.regs, "needs finite values >= 0")
  check(all(checks.is_number(v) and v > 0 for v in s.init_stddevs),
        "sweep.init_stddevs", s.init_stddevs, "must be finite and > 0")
  check(s.num_seeds >= 1, "sweep.num_seeds", s.num_seeds, "must be >= 1")
  check(s.points_per_program >= 0, "sweep.points_per_program",
        s.points_per_program, "must be >= 0 (0: all points at once)")
  check(config.final.every >= 0, "final.every", config.final.every,
        "must be >= 0 (0: as eval.every)")
  check(config.final.num_seeds >= 1, "final.num_seeds",
        config.final.num_seeds, "must be >= 1")
  check(len(config.final.dims) > 0, "final.dims", config.final.dims,
        "needs a value")
  # 0 would read as "no d / no m" (search_space.shape_config: EASE^R's),
  # and the model's own d and m would train under the record's 0.
  for field, values in (("sweep.dims", s.dims),
                        ("sweep.num_negatives", s.num_negatives),
                        ("final.dims", config.final.dims)):
    check(all(checks.is_whole(v) and v >= 1 for v in values), field, values,
          "needs whole numbers >= 1")
  search_space.validate(config)
  for name, dim, m in search_space.shapes(config):
    for point in search_space.points(config, name)[:1]:
      shape = search_space.shape_config(config, name, dim, m)
      search_space.apply(shape, point)
      _validate_shape(shape, "sweep.dims", s.dims)
  # The final runs train on final.data, at every d, whichever model wins.
  for name in s.models:
    for dim in config.final.dims:
      shape = search_space.shape_config(config, name, dim, s.num_negatives[0])
      shape.data = copy.deepcopy(config.final.data)
      _validate_shape(shape, "final.dims", config.final.dims, "final.")


def _validate_shape(shape, field, dims, data_prefix="") -> None:
  """ncf_config.validate of a shape's config; a d the model refuses is
  named by the field that holds it, a data.* field with `data_prefix`."""
  try:
    ncf_config.validate(shape)
  except checks.ConfigError as e:
    if data_prefix and (e.field or "").startswith("data."):
      error = checks.ConfigError(str(e).replace(
          f"config field {e.field}=",
          f"config field {data_prefix}{e.field}=", 1))
      error.field = data_prefix + e.field
      error.requirement = e.requirement
      raise error from None
    if e.field != "model.dim":
      raise
    raise checks.ConfigError(
        f"config field {field}={dims!r}: d = {shape.model.dim}: "
        f"{e.requirement}") from None
