"""Top-K recommendations from a finished run, excluding items seen in training.

python -m dot_vs_learned.recommend --workdir=/tmp/dvl_default --users=0,5 --k=10

Reads the run's config.json (model and dataset) and params.npz, ranks every
item exactly (retrieval.py) for each user with the parameters of one seed,
and prints item ids with their scores (logits), best first. Flags are checked
against the parameters (the user and item tables) before the dataset is
reloaded for the items each user saw in training, and its files checked
against the sha256 the run recorded (inputs.json); a bad value exits with
status 1 and one line `error: ...` naming the flag or the file.
"""

import pathlib
import re
import sys
import zipfile

from absl import app
from absl import flags
import ml_collections
import numpy as np

from dot_vs_learned import checks
from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import distributed
from dot_vs_learned import ease as ease_lib
from dot_vs_learned import models
from dot_vs_learned import ncf_config
from dot_vs_learned import results
from dot_vs_learned import retrieval
from dot_vs_learned import workdir as workdir_lib

_WORKDIR = flags.DEFINE_string("workdir", None, "a finished training run.")
_USERS = flags.DEFINE_list("users", None, "user ids to recommend for.")
_K = flags.DEFINE_integer("k", 10, "items per user.")
_SEED_INDEX = flags.DEFINE_integer(
    "seed_index", 0, "which of the run's seeds (0 .. train.num_seeds - 1).")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", 65_536,
                                   "items scored per step.")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class RecommendError(ValueError):
  """A flag value does not fit the run; the message names the flag."""


def parse_users(values) -> list[int]:
  """The --users strings as ints; RecommendError naming the flag otherwise."""
  text = checks.shorten(",".join(values))
  if not values:
    raise RecommendError("--users=: no user ids; give e.g. --users=0,5")
  bad = [v for v in values if not _INTEGER.fullmatch(v.strip())]
  if bad:
    quoted = [checks.shorten(v) for v in bad[:5]]
    raise RecommendError(f"--users={text}: {quoted} not integers")
  huge = [v for v in values if len(v) > 1000]  # int() refuses 4300 digits
  if huge:
    digits = huge[0].strip()
    raise RecommendError(f"--users: [{checks.shorten(digits, 20)}] out of "
                         f"range ({len(digits)} digits)")
  return [int(v) for v in values]


def _failure_reason(path) -> str:
  """The first line of failure.json's message, cut."""
  try:
    message = str(results.read_json_object(path / results.FAILURE)["message"])
  except (results.JSONFileError, KeyError):
    return "its message is unreadable"
  return checks.shorten((message.splitlines() or [""])[0], 200)


def _read_config(path, flag):
  """config.json with the fields recommend reads, or RecommendError."""
  try:
    config = results.read_json_object(path / results.CONFIG)
  except results.JSONFileError as e:
    raise RecommendError(f"{flag}: {results.CONFIG}: {e}") from None
  if config.get("experiment", "ncf") != "ncf":
    experiment = checks.shorten(config["experiment"])
    raise RecommendError(f"{flag}: a {experiment!r} run; "
                         "recommend serves NCF training runs (experiment "
                         "'ncf')")
  data, model = config.get("data"), config.get("model")
  if not (isinstance(data, dict) and isinstance(model, dict) and
          isinstance(model.get("name"), str) and
          type(model.get("dim")) is int):
    raise RecommendError(f"{flag}: {results.CONFIG} lacks data, model.name "
                         "or model.dim (an NCF run's config has them)")
  # The data fields load the dataset again: each of the kind a run writes.
  for field, default in ncf_config.default_config().data.items():
    value = data.get(field, default)
    if type(value) is not type(default):  # True is no number of users
      raise RecommendError(
          f"{flag}: {results.CONFIG}: data.{field}="
          f"{checks.shorten(repr(value))} is not a {type(default).__name__}, "
          "as a run writes it")
  return ml_collections.ConfigDict(config)


def _check_inputs(path, flag, data_config) -> None:
  """Refuses data files whose sha256 is not the one in inputs.json."""
  # Same sizes do not make the same data: other training pairs would show
  # items a user saw in training as unseen. Matched by file name, since the
  # same bytes moved (data.dir, the cache) are the data the run trained on.
  inputs = datasets.input_paths(data_config)
  if not inputs:  # generated data: its config is its fingerprint
    return
  try:
    trained = results.read_json_object(path / workdir_lib.INPUTS)
  except results.JSONFileError as e:
    raise RecommendError(f"{flag}: {workdir_lib.INPUTS}: {e}, so the data "
                         "cannot be checked") from None
  trained = {pathlib.Path(p).name: h for p, h in trained.items()}
  changed = [p for p, h in workdir_lib.fingerprint(inputs).items()
             if trained.get(pathlib.Path(p).name) != h]
  if changed:
    raise RecommendError(
        f"{flag}: {', '.join(changed)} changed since training (sha256 "
        f"differs from {workdir_lib.INPUTS}); recommend from the data the "
        "run trained on, or retrain")


def load_run(workdir):
  """(config, {name: [seeds, ...] array}) of a finished run with parameters."""
  path = pathlib.Path(workdir)
  flag = f"--workdir={workdir}"
  if not path.exists():
    raise RecommendError(f"{flag}: no such directory")
  if not path.is_dir():
    raise RecommendError(f"{flag}: a file, not a run's workdir")
  if (path / results.FAILURE).exists():
    raise RecommendError(f"{flag} holds no finished run: the run failed "
                         f"({_failure_reason(path)}; {results.FAILURE})")
  if not (path / results.RESULTS).exists():
    what = ("an unfinished run (no results.json yet)" if
            (path / results.CONFIG).exists() else "no run")
    raise RecommendError(f"{flag} holds no finished run: {what}; train one "
                         "with python -m dot_vs_learned.main")
  config = _read_config(path, flag)
  if not (path / results.PARAMS).exists():
    raise RecommendError(f"{flag}: the run saved no {results.PARAMS} (model "
                         f"{config.get('model', {}).get('name')!r}); only "
                         "trained models can recommend")
  try:
    with np.load(path / results.PARAMS) as arrays:
      flat = {name: arrays[name] for name in arrays.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise RecommendError(f"{flag}: cannot read {results.PARAMS}: "
                         f"{checks.shorten(e, 200)}") from None
  if "ease/weights" in flat:
    raise RecommendError(f"{flag}: {results.PARAMS} holds EASE^R's B as "
                         "'ease/weights', from an older version that saved B "
                         "rather than B^T ('ease/weights_t'); rerun the model")
  if not flat or any(value.ndim == 0 for value in flat.values()):
    raise RecommendError(f"{flag}: {results.PARAMS} holds no per-seed "
                         "parameters")
  return config, flat


def table_rows(flat, side) -> int:
  """Rows of the `side` ("user" or "item") embedding tables in params.npz;
  EASE^R's B^T [I, I] gives the items (its users are the data's)."""
  if side == "item" and "ease/weights_t" in flat:
    return flat["ease/weights_t"].shape[1]
  rows = {value.shape[1] for name, value in flat.items() if value.ndim == 3
          and (name in (f"mf/{side}", f"ials/{side}") or
               name.endswith(f"/{side}/embedding"))}
  if len(rows) != 1:
    raise RecommendError(f"--workdir: {results.PARAMS} holds "
                         f"{'mismatched' if rows else 'no'} {side} tables")
  return rows.pop()


def recommend_from_workdir(workdir, users, k, seed_index=0,
                           chunk_size=65_536):
  """(config, scores, ids) of the top k unseen items of each user."""
  if not users:
    raise RecommendError("--users=: no user ids; give e.g. --users=0,5")
  if any(not isinstance(u, (int, np.integer)) or isinstance(u, bool)
         for u in users):
    raise RecommendError(f"--users: {checks.shorten(users)}: not integers")
  if k < 1:
    raise RecommendError(f"--k={checks.shorten(k)}: must be >= 1")
  if chunk_size < 1:
    raise RecommendError(f"--chunk_size={checks.shorten(chunk_size)}: "
                         "must be >= 1")
  config, flat = load_run(workdir)
  num_seeds = next(iter(flat.values())).shape[0]
  if not 0 <= seed_index < num_seeds:
    raise RecommendError(f"--seed_index={checks.shorten(seed_index)}: the "
                         f"run has {num_seeds} seeds (0 .. {num_seeds - 1})")
  # The model answers for the users and items its tables hold, whatever the
  # dataset's files hold today (EASE^R's users are the data's histories).
  ease = "ease/weights_t" in flat
  data = datasets.load_dataset(config.data) if ease else None
  num_users = data.num_users if ease else table_rows(flat, "user")
  num_items = table_rows(flat, "item")
  bad = [checks.shorten(u, 20) for u in users if not 0 <= u < num_users]
  if bad:
    raise RecommendError(f"--users: [{', '.join(bad[:5])}] out of range; the "
                         f"model has users 0 .. {num_users - 1}")
  if k > num_items:
    raise RecommendError(f"--k={checks.shorten(k)}: the model ranks "
                         f"{num_items} items")
  if data is None:
    data = datasets.load_dataset(config.data)
  if (data.num_users, data.num_items) != (num_users, num_items):
    raise RecommendError(
        f"--workdir={workdir}: the model has {num_users} users and "
        f"{num_items} items, its dataset {data.name!r} now {data.num_users} "
        f"and {data.num_items}: the data changed since training")
  _check_inputs(pathlib.Path(workdir), f"--workdir={workdir}", config.data)
  users = np.asarray(users, dtype=np.int64)
  order = np.argsort(data.train_users, kind="stable")
  starts = np.searchsorted(data.train_users[order], [users, users + 1])
  seen = [data.train_items[order[a:b]] for a, b in zip(*starts)]
  rows = None
  if ease:  # I x I: copied once, into a buffer XLA:CPU reads in place
    weights = ease_lib.host_zeros(flat["ease/weights_t"].shape[1:])
    weights[:] = flat.pop("ease/weights_t")[seed_index]
    # The histories of the asked users only (all of Gowalla's: 4.9 GB).
    rows = np.arange(len(users))
    history = ease_lib.history_matrix(
        np.repeat(rows, [len(s) for s in seen]),
        np.concatenate(seen).astype(np.int64), len(users), data.num_items)
    params = models.EaseParams(ease_lib.on_device(weights),
                               ease_lib.on_device(history))
  else:
    params = models.unflatten_params({name: value[seed_index]
                                      for name, value in flat.items()})
  model = retrieval.serving_model(params)
  catalog = retrieval.make_catalog(model.items, chunk_size)
  try:
    scores, ids = retrieval.recommend(model, catalog, users, k, seen, rows)
  except ValueError as e:
    raise RecommendError(f"--k={k}: {e}") from e
  return config, scores, ids


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    users = parse_users(_USERS.value)
    config, scores, ids = recommend_from_workdir(
        _WORKDIR.value, users, _K.value, _SEED_INDEX.value, _CHUNK_SIZE.value)
  except (RecommendError, results.WorkdirError, data_lib.DataError) as e:
    sys.exit(f"error: {e}")
  print(f"{ncf_config.run_label(config.model.name, config.model.dim)} on "
        f"{config.data.name}, "
        f"seed index {_SEED_INDEX.value}: top {_K.value} unseen items")
  for user, row_scores, row_ids in zip(users, scores, ids):
    items = ", ".join(f"{i} ({s:.3f})" for i, s in zip(row_ids, row_scores))
    print(f"user {user}: {items}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir", "users"])
  distributed.quiet_backend_probe()
  app.run(main)
