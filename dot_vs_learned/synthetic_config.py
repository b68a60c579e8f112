"""The §4 synthetic grid's config: defaults and validation.

Every value out of range raises ConfigError naming the field, before the
workdir is touched; validate_sizes checks what the grid's largest cell needs
(int32 positions, host and device memory) before any of it is allocated.
"""

import ml_collections

from dot_vs_learned import checks
from dot_vs_learned import ncf_config

MAX_EPOCHS = 100_000  # a bound on typos (as ncf_config's); §4 trains 32
MAX_SEED = ncf_config.MAX_SEED  # jax.random.key keeps 32 bits


def default_config():
  config = ml_collections.ConfigDict()
  config.experiment = "synthetic"  # which experiment main.py runs
  config.synthetic = ml_collections.ConfigDict(dict(
      dims=(16, 32, 64, 128),  # embedding dimension d
      nums_users=(4000, 8000, 16000, 32000, 64000, 128000),  # M (= N items)
      multipliers=(1, 2, 4),  # h = multiplier * d / 2; layers [4h, 2h, h]
      num_seeds=5,  # seeds per cell (vmapped); §4: 5
      epochs=32,  # MLP training epochs per cell
      batch_size=256,  # pairs per Adam step
      learning_rate=0.001,  # Adam's learning rate
      pairs_per_user=100,  # 100 M pairs in all
      train_fraction=0.9,  # pairs trained on; the rest is the test set
      num_fresh=100_000,  # pairs of embeddings drawn anew, scored
      label_noise=0.85,  # sigma_label: the dot product's RMSE
      trivial_rmse=1.13,  # sqrt(Var y): the zero model's RMSE
      eval_chunk=65_536,  # pairs scored per step of the evaluation
      seed=0,  # root seed of the data and the training
  ))
  config.checkpoint = ml_collections.ConfigDict(dict(
      every=4,  # epochs between checkpoints of a training cell; 0: none
      keep=2,  # checkpoints kept per cell (deleted once it is recorded)
  ))
  return config


def validate(config) -> None:
  """Raises ConfigError naming the first config field out of range."""
  c, check = config.synthetic, checks.check
  for field, kind, need in (("dims", checks.is_whole, "whole numbers >= 1"),
                            ("nums_users", checks.is_whole,
                             "whole numbers >= 1"),
                            ("multipliers", checks.is_number,
                             "finite numbers > 0")):
    values = c[field]
    check(isinstance(values, (tuple, list)) and len(values) > 0 and all(
        kind(v) and v > 0 for v in values), f"synthetic.{field}", values,
          f"needs {need}")
  # h = multiplier * d / 2 units (synthetic.hidden_sizes): a whole number.
  check(all(float(m * d / 2).is_integer() for m in c.multipliers
            for d in c.dims), "synthetic.multipliers", c.multipliers,
        f"multiplier * d / 2 must be a whole number for every d in "
        f"synthetic.dims={tuple(c.dims)} (h = multiplier * d / 2 units)")
  for field in ("num_seeds", "epochs", "batch_size", "num_fresh",
                "eval_chunk", "pairs_per_user"):
    check(checks.is_whole(c[field]) and c[field] >= 1, f"synthetic.{field}",
          c[field], "must be a whole number >= 1")
  check(c.epochs <= MAX_EPOCHS, "synthetic.epochs", c.epochs,
        f"must be <= {MAX_EPOCHS} (synthetic_config.MAX_EPOCHS)")
  check(checks.is_whole(c.seed) and 0 <= c.seed <= MAX_SEED,
        "synthetic.seed", c.seed, f"must be a whole number in [0, {MAX_SEED}]")
  for field in ("learning_rate", "train_fraction", "label_noise",
                "trivial_rmse"):
    check(checks.is_number(c[field]), f"synthetic.{field}", c[field],
          "must be a finite number")
  check(c.learning_rate > 0, "synthetic.learning_rate", c.learning_rate,
        "must be > 0")
  check(0 < c.train_fraction < 1, "synthetic.train_fraction",
        c.train_fraction, "must be in (0, 1)")
  # synthetic_data.generate trains on round(fraction x pairs) of them.
  splits = [round(c.train_fraction * c.pairs_per_user * m)
            for m in c.nums_users]
  check(all(1 <= n < c.pairs_per_user * m
            for n, m in zip(splits, c.nums_users)),
        "synthetic.train_fraction", c.train_fraction,
        f"x synthetic.pairs_per_user={c.pairs_per_user} x M must leave at "
        f"least 1 training and 1 test pair for every M in "
        f"synthetic.nums_users={tuple(c.nums_users)}")
  check(all(c.pairs_per_user <= m for m in c.nums_users),
        "synthetic.pairs_per_user", c.pairs_per_user,
        "must be in [1, M] (pairs are distinct among M x M)")
  check(0 <= c.label_noise < c.trivial_rmse, "synthetic.label_noise",
        c.label_noise, f"must be in [0, trivial_rmse={c.trivial_rmse})")
  check(checks.is_whole(config.checkpoint.every) and
        config.checkpoint.every >= 0, "checkpoint.every",
        config.checkpoint.every, "must be >= 0 (0: no checkpoints)")
  check(checks.is_whole(config.checkpoint.keep) and
        config.checkpoint.keep >= 1, "checkpoint.keep",
        config.checkpoint.keep, "must be >= 1")


def cell_bytes(num_users, dim, multiplier, c) -> tuple[int, int]:
  """Estimated (host, device) bytes of a cell's seeds, float32 and int32.

  Host: every seed's arrays and their stacked copy (synthetic_data.
  stack_seeds), and sample_pairs' int64 ids and their copies while a seed
  is drawn. Device: the data, an epoch's shuffled copy of the pairs with
  its positions, parameters with gradients and Adam's moments, and the
  activations of a step and of an evaluation chunk.
  """
  pairs, h = c.pairs_per_user * num_users, multiplier * dim / 2
  data = 4 * (2 * num_users * dim + 3 * pairs + (2 * dim + 1) * c.num_fresh)
  host = 2 * c.num_seeds * data + 48 * pairs
  params = 8 * dim * h + 10 * h * h  # [2d, 4h], [4h, 2h], [2h, h]
  rows = 3 * c.batch_size + min(c.eval_chunk, max(pairs, c.num_fresh))
  device = c.num_seeds * (data + 28 * pairs + 16 * params +
                          4 * rows * (2 * dim + 7 * h))
  return host, int(device)


def validate_sizes(config) -> None:
  """Refuses a grid whose largest cell overflows int32 positions or needs
  more than 90% of the memory (ConfigError naming the fields)."""
  c, check = config.synthetic, checks.check
  most = max(c.nums_users) * c.pairs_per_user
  check(most + c.batch_size + c.eval_chunk < 2**31, "synthetic.nums_users",
        c.nums_users, f"synthetic.pairs_per_user={c.pairs_per_user} x M = "
        f"{most} pairs must stay below 2^31 (int32 positions)")
  check(c.num_fresh + c.eval_chunk < 2**31, "synthetic.num_fresh",
        c.num_fresh, "must stay below 2^31 (int32 positions)")
  for multiplier in c.multipliers:
    for dim in c.dims:
      num_users = max(c.nums_users)  # the most memory of this (d, h)
      overflow = checks.memory_overflow(*cell_bytes(num_users, dim,
                                                    multiplier, c))
      if overflow:
        need, of, limit = overflow
        sizes = ", ".join(f"synthetic.{f}={c[f]!r}" for f in (
            "nums_users", "dims", "num_seeds", "pairs_per_user",
            "num_fresh"))
        raise checks.ConfigError(
            f"config fields {sizes}: the cell d={dim}, M={num_users}, "
            f"multiplier={multiplier} needs about {need / 2**30:.1f} GiB "
            f"of {of} memory, more than 90% of its {limit / 2**30:.1f} GiB")
