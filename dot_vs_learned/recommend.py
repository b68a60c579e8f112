"""Top-K recommendations from a finished run, excluding items seen in training.

python -m dot_vs_learned.recommend --workdir=/tmp/dvl_default --users=0,5 --k=10

Reads the run's config.json (model and dataset) and params.npz, ranks every
item exactly (retrieval.py) for each user with the parameters of one seed,
and prints item ids with their scores (logits), best first.
"""

import json
import pathlib
import sys

from absl import app
from absl import flags
import ml_collections
import numpy as np

from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import models
from dot_vs_learned import results
from dot_vs_learned import retrieval

_WORKDIR = flags.DEFINE_string("workdir", None, "a finished training run.")
_USERS = flags.DEFINE_list("users", None, "user ids to recommend for.")
_K = flags.DEFINE_integer("k", 10, "items per user.")
_SEED_INDEX = flags.DEFINE_integer(
    "seed_index", 0, "which of the run's seeds (0 .. train.num_seeds - 1).")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 65_536,
                                   "items scored per step.")


class RecommendError(ValueError):
  """A flag value does not fit the run; the message names the flag."""


def recommend_from_workdir(workdir, users, k, seed_index=0,
                           chunk_size=65_536):
  """(config, scores, ids) of the top k unseen items of each user."""
  flat = results.load_params(workdir)
  with open(pathlib.Path(workdir) / results.CONFIG) as f:
    config = ml_collections.ConfigDict(json.load(f))
  num_seeds = next(iter(flat.values())).shape[0]
  if not 0 <= seed_index < num_seeds:
    raise RecommendError(f"--seed_index={seed_index}: the run has "
                         f"{num_seeds} seeds (0 .. {num_seeds - 1})")
  data = datasets.load_dataset(config.data)
  users = np.asarray(users, dtype=np.int64)
  bad = users[(users < 0) | (users >= data.num_users)]
  if bad.size:
    raise RecommendError(f"--users: {bad.tolist()} out of range; the run's "
                         f"dataset has users 0 .. {data.num_users - 1}")
  if k < 1:
    raise RecommendError(f"--k={k}: must be >= 1")
  order = np.argsort(data.train_users, kind="stable")
  starts = np.searchsorted(data.train_users[order], [users, users + 1])
  seen = [data.train_items[order[a:b]] for a, b in zip(*starts)]
  params = models.unflatten_params({name: value[seed_index]
                                    for name, value in flat.items()})
  model = retrieval.serving_model(params)
  catalog = retrieval.make_catalog(model.items, chunk_size)
  try:
    scores, ids = retrieval.recommend(model, catalog, users, k, seen)
  except ValueError as e:
    raise RecommendError(f"--k={k}: {e}") from e
  return config, scores, ids


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    users = [int(u) for u in _USERS.value]
  except ValueError:
    sys.exit(f"error: --users={','.join(_USERS.value)}: not integers")
  try:
    config, scores, ids = recommend_from_workdir(
        _WORKDIR.value, users, _K.value, _SEED_INDEX.value, _CHUNK_SIZE.value)
  except (RecommendError, results.WorkdirError, data_lib.DataError) as e:
    sys.exit(f"error: {e}")
  print(f"{config.model.name} d={config.model.dim} on {config.data.name}, "
        f"seed index {_SEED_INDEX.value}: top {_K.value} unseen items")
  for user, row_scores, row_ids in zip(users, scores, ids):
    items = ", ".join(f"{i} ({s:.3f})" for i, s in zip(row_ids, row_scores))
    print(f"user {user}: {items}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "users"])
  app.run(main)
