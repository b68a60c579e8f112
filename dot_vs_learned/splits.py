"""Builds NCF-protocol splits from raw interaction logs, as a library and CLI.

python -m dot_vs_learned.splits --log=ml-1m/ratings.dat --out_dir=DIR --name=ml-1m-rebuilt
python -m dot_vs_learned.splits --holdout_of=NCF_DIR --name=ml-1m --out_dir=DIR [--pick=random]

The NCF protocol (He et al. 2017, §4.1): binarize, hold out each user's latest
interaction, sample negatives uniformly from the items the user never touched.
--holdout_of applies it to an NCF training file: the tuning split of App. A.2
(DIR/ml-1m.holdout.*), for selecting hyperparameters without the test set.
"""

import pathlib

from absl import app
from absl import flags
from absl import logging
import numpy as np

from dot_vs_learned import data
from dot_vs_learned import datasets

_USER_NAMES = {"user", "userid", "uid"}
_ITEM_NAMES = {"item", "itemid", "iid", "movie", "movieid"}
_TIME_NAMES = {"timestamp", "time", "ts"}




def _first_appearance(keys) -> np.ndarray:
  """Maps keys to 0.. in order of first appearance."""
  _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
  rank = np.empty(len(first), np.int64)
  rank[np.argsort(first)] = np.arange(len(first))
  return rank[inverse.ravel()]


def _find_column(names, known):
  """Returns the index of the first name in `known`, or None."""
  return next((c for c, n in enumerate(names) if n in known), None)


def _read_log(path, fmt):
  """Parses an interaction log; returns raw user and item tokens, times."""
  text = data.read_bytes(path)
  first = text.split(b"\n", 1)[0]
  if fmt == "auto":
    fmt = "movielens" if b"::" in first else "csv" if b"," in first else "tsv"
  separators = {"movielens": b"::", "csv": b",", "tsv": b"\t"}
  if fmt not in separators:
    raise data.DataError(f"{path}: unknown fmt {fmt!r}, expected auto, "
                         f"{', '.join(separators)}")
  # Ids and times hold no blanks, so every separator can become one.
  text = text.replace(separators[fmt], b"\t")
  names = [t.decode(errors="replace").lower().replace("_", "")
           for t in text.split(b"\n", 1)[0].split()]
  first_line, ncols = 1, len(names)
  if _USER_NAMES & set(names):  # a header row names the columns
    cols = [_find_column(names, known)
            for known in (_USER_NAMES, _ITEM_NAMES, _TIME_NAMES)]
    if cols[1] is None:
      raise data.DataError(f"{path}:1: header has no item column "
                           f"({', '.join(sorted(_ITEM_NAMES))})")
    text, first_line = text.partition(b"\n")[2], 2
    if not text.strip():
      raise data.DataError(f"{path}: no interactions after the header")
  elif 2 <= ncols <= 4:  # headerless: user item [rating] [timestamp]
    cols = [0, 1, 3 if ncols == 4 else None]
  else:
    raise data.DataError(f"{path}:1: expected 2-4 columns (user item "
                         f"[rating] [timestamp]) or a header, found {ncols}")
  n = data.check_columns(path, text, ncols, first_line)
  tokens = np.array(text.split()).reshape(n, ncols)
  times = None if cols[2] is None else data.convert_tokens(
      path, tokens[:, cols[2]], "timestamp", np.float64, first_line)
  return tokens[:, cols[0]], tokens[:, cols[1]], times


def build_split(log_path, out_dir, name, num_negatives=99, seed=0,
                min_interactions=1, fmt="auto") -> data.NCFData:
  """Builds NCF files from a raw interaction log and returns them loaded.

  Rules: every (user, item) pair present is a positive (repeats collapse to
  the latest). Users with fewer than max(2, min_interactions) distinct items
  are dropped (one goes to test, at least one to train); the count is logged.
  Users and items are then numbered 0.. in order of first appearance among the
  kept lines. Each user's latest interaction is held out; among equal
  timestamps the line appearing last in the file counts as latest, and
  without timestamps file order decides. Negatives are sampled uniformly
  without replacement from items the user never interacted with.

  Args:
    log_path: MovieLens `ratings.dat` (`user::item::rating::timestamp`), CSV
      with a header naming user, item and optionally timestamp columns, or
      headerless `user item [rating] [timestamp]` separated by tabs, blanks or
      commas. Ids may be any tokens; timestamps must be numbers.
    out_dir, name: where the `{name}.*` NCF files are written.
    num_negatives, seed: negatives per user (99 in NCF), sampling seed.
    min_interactions: minimum distinct items per kept user.
    fmt: separator: "auto", "movielens", "csv" or "tsv"; a header row is
      recognized in any of them.
  """
  raw_users, raw_items, times = _read_log(log_path, fmt)
  users, items = _first_appearance(raw_users), _first_appearance(raw_items)
  width = items.max() + 1
  counts = np.bincount(np.unique(users * width + items) // width)
  threshold = max(2, min_interactions)
  logging.info("build_split %s: dropped %d of %d users with < %d items",
               log_path, (counts < threshold).sum(), len(counts), threshold)
  keep = counts[users] >= threshold
  if not keep.any():
    raise data.DataError(
        f"{log_path}: no user has >= {threshold} distinct items")
  users, items = _first_appearance(users[keep]), _first_appearance(items[keep])
  times = np.arange(len(keep), dtype=float) if times is None else times
  rng = np.random.Generator(np.random.PCG64(seed))
  split, train_times, test_times = datasets.ncf_split(
      log_path, name, users, items, times[keep], users.max() + 1,
      items.max() + 1, num_negatives, rng)
  data.write_ncf(split, out_dir, name, train_timestamps=train_times,
                 test_timestamps=test_times)
  return data.load_ncf(out_dir, name)


PICKS = ("latest", "random")


def holdout_split(ncf_dir, name, out_dir, out_name=None, seed=0,
                  pick="latest") -> data.NCFData:
  """The tuning split of paper App. A.2, built from an NCF training file only.

  pick="latest": each user's latest training interaction (by the timestamp
  column; equal timestamps leave the line appearing last in the file) becomes
  the tuning test item, as NCF held out the final test item. When all
  timestamps are equal (e.g. a file rebuilt without them) that is file
  order, which is biased where the file is not in time order (sorted by item
  id, it holds out each user's highest, i.e. newest and rarest, item): a
  warning says so. pick="random": a uniformly random interaction per user
  (seeded), the unbiased choice when time is unknown. Its negatives, as many
  per user as the NCF test file has, are sampled uniformly from items the
  user has no training interaction with (among the item ids of the training
  file); the rest is the tuning training set. Nothing of the final test
  items or negatives is used: their files give only the user count and the
  number of negatives. Written as
  NCF files `{out_dir}/{out_name}.*` (default name `{name}.holdout`).
  """
  if pick not in PICKS:
    raise ValueError(f"holdout_split: pick={pick!r}, expected one of {PICKS}")
  full = data.load_ncf(ncf_dir, name)  # validates all three files
  train_path = pathlib.Path(ncf_dir) / f"{name}.train.rating"
  users, items, times = _read_log(train_path, "tsv")
  users, items = users.astype(np.int64), items.astype(np.int64)
  counts = np.bincount(users, minlength=full.num_users)
  if (counts < 2).any():
    user = int(np.argmin(counts))
    raise data.DataError(
        f"{train_path}: user {user} has {counts[user]} training "
        "interactions; the tuning split needs >= 2 (one held out, one kept)")
  if pick == "latest" and np.all(times == times[0]):
    logging.warning(
        "%s: every timestamp is %s, so the 'latest' interaction is the last "
        "line in file order; if the file is not in time order this biases the "
        "tuning test set (use pick='random', CLI --pick=random)", train_path,
        times[0])
  out_name = out_name or f"{name}.holdout"
  rng = np.random.Generator(np.random.PCG64(seed))
  rank = rng.permutation(len(users)) if pick == "random" else None
  # Negatives come from the items of the training file: the ids that occur
  # only in the final test files are not known here.
  split, train_times, test_times = datasets.ncf_split(
      train_path, out_name, users, items, times, full.num_users,
      int(items.max()) + 1, full.test_negatives.shape[1], rng, rank)
  data.write_ncf(split, out_dir, out_name, train_timestamps=train_times,
                 test_timestamps=test_times)
  return data.load_ncf(out_dir, out_name)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(_LOG.value) == bool(_HOLDOUT_OF.value):
    raise app.UsageError("give exactly one of --log (a raw log to split) and "
                         "--holdout_of (an NCF folder to make a tuning split "
                         "of)")
  if _LOG.value:
    split = build_split(_LOG.value, _OUT_DIR.value, _NAME.value,
                        _NUM_NEGATIVES.value, _SEED.value,
                        _MIN_INTERACTIONS.value, _FMT.value)
  else:
    split = holdout_split(_HOLDOUT_OF.value, _NAME.value, _OUT_DIR.value,
                          _OUT_NAME.value or None, _SEED.value, _PICK.value)
  print(f"{_OUT_DIR.value}/{split.name}.*: {split.num_users} users, "
        f"{split.num_items} items, {split.train_users.shape[0]} training "
        f"pairs, {split.test_negatives.shape[1]} negatives per user")


if __name__ == "__main__":
  _LOG = flags.DEFINE_string("log", None, "Raw interaction log.")
  _HOLDOUT_OF = flags.DEFINE_string(
      "holdout_of", None, "Folder of NCF files {name}.*: build their tuning "
      "split (App. A.2) instead of splitting a log.")
  _OUT_NAME = flags.DEFINE_string(
      "out_name", "", "--holdout_of: name of the tuning files; default "
      "{name}.holdout.")
  _PICK = flags.DEFINE_enum(
      "pick", "latest", list(PICKS), "--holdout_of: which interaction of a "
      "user becomes the tuning test item: the latest (timestamp, then file "
      "order) or a random one (for files without real timestamps).")
  _OUT_DIR = flags.DEFINE_string("out_dir", None, "Where NCF files go.")
  _NAME = flags.DEFINE_string("name", None, "Dataset name: {name}.* files.")
  _NUM_NEGATIVES = flags.DEFINE_integer("num_negatives", 99,
                                        "Negatives per user (NCF: 99).")
  _SEED = flags.DEFINE_integer("seed", 0, "Negative sampling seed.")
  _MIN_INTERACTIONS = flags.DEFINE_integer(
      "min_interactions", 1, "Minimum distinct items of a kept user (>= 2).")
  _FMT = flags.DEFINE_enum("fmt", "auto", ["auto", "movielens", "csv", "tsv"],
                           "Log format.")
  flags.mark_flags_as_required(["out_dir", "name"])
  app.run(main)
