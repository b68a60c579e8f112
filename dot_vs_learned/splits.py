"""Builds NCF-protocol splits from raw interaction logs, as a library and CLI.

python -m dot_vs_learned.splits --log=ml-1m/ratings.dat --out_dir=DIR --name=ml-1m-rebuilt
python -m dot_vs_learned.splits --holdout_of=NCF_DIR --name=ml-1m --out_dir=DIR [--pick=random]

The NCF protocol (He et al. 2017, §4.1): binarize, hold out each user's latest
interaction, sample negatives uniformly from the items the user never touched.
--holdout_of applies it to an NCF training file: the tuning split of App. A.2
(DIR/ml-1m.holdout.*), for selecting hyperparameters without the test set.
Reading the logs: logs.py; where the files go and their writing: split_output.py.
"""

import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from dot_vs_learned import data
from dot_vs_learned import item_lists
from dot_vs_learned import logs
from dot_vs_learned import split_output
from dot_vs_learned.data import DataError
from dot_vs_learned.data import NCFData

def sample_negatives(source, users, items, num_users, num_items,
                     num_negatives, rng) -> np.ndarray:
  """Samples distinct items each user never touched, uniformly (NCF 4.1)."""
  if num_negatives < 1:
    raise DataError(f"{source}: num_negatives={num_negatives} must be >= 1")
  counts = np.bincount(users, minlength=num_users)
  short = np.flatnonzero(num_items - counts < num_negatives)
  if short.size:
    raise DataError(f"{source}: user {short[0]} has {counts[short[0]]} of "
                    f"{num_items} items, fewer than num_negatives="
                    f"{num_negatives} left to sample")
  order = np.argsort(users, kind="stable")
  users, items = users[order], items[order]
  bounds = np.searchsorted(users, np.arange(num_users + 1))
  out = np.empty((num_users, num_negatives), np.int32)
  chunk = max(1, (1 << 22) // num_items)  # ~32 MB of keys at a time
  for lo in range(0, num_users, chunk):
    hi = min(lo + chunk, num_users)
    # The k smallest of iid uniform keys over allowed items are a uniform
    # k-subset; sorting them by key gives a uniformly random order too.
    keys = rng.random((hi - lo, num_items))
    span = slice(bounds[lo], bounds[hi])
    keys[users[span] - lo, items[span]] = np.inf
    pick = np.argpartition(keys, num_negatives - 1, axis=1)[:, :num_negatives]
    by_key = np.argsort(np.take_along_axis(keys, pick, axis=1), axis=1)
    out[lo:hi] = np.take_along_axis(pick, by_key, axis=1)
  return out


def ncf_split(source, name, users, items, times, num_users, num_items,
              num_negatives, rng, rank=None):
  """Applies the NCF protocol to dense ids; returns NCFData and times.

  Each user's pair with the largest `rank` (default: `times`; ties: the later
  line) is held out.
  """
  pos = np.arange(len(users))
  rank = times if rank is None else rank
  # A repeated pair keeps its latest copy; equal times go to the later line.
  order = np.lexsort((pos, rank, items, users))
  u, i, t, r, p = (a[order] for a in (users, items, times, rank, pos))
  last = np.append((u[1:] != u[:-1]) | (i[1:] != i[:-1]), True)
  order = np.lexsort((p[last], r[last], u[last]))
  u, i, t = u[last][order], i[last][order], t[last][order]
  is_test = np.append(u[1:] != u[:-1], True)  # each user's latest pair
  test_items = np.empty(num_users, np.int32)
  test_items[u[is_test]] = i[is_test]
  negatives = sample_negatives(source, u, i, num_users, num_items,
                               num_negatives, rng)
  split = NCFData(name, int(num_users), int(num_items),
                  u[~is_test].astype(np.int32), i[~is_test].astype(np.int32),
                  test_items, negatives)
  return split, t[~is_test], t[is_test]


def build_split(log_path, out_dir, name, num_negatives=99, seed=0,
                min_interactions=1, fmt="auto") -> NCFData:
  """Builds NCF files from a raw interaction log and returns them loaded.

  Rules: every (user, item) pair present is a positive (repeats collapse to
  the latest). Users with fewer than max(2, min_interactions) distinct items
  are dropped (one goes to test, at least one to train); the count is logged.
  Users and items are then numbered 0.. in order of first appearance among the
  kept lines. Each user's latest interaction is held out; among equal
  timestamps the line appearing last in the file counts as latest, and
  without timestamps file order decides. Negatives are sampled uniformly
  without replacement from items the user never interacted with.

  Besides the NCF files, `{name}.user_map.tsv` and `{name}.item_map.tsv` give
  each kept id as written in the log and its number in the split (line k+1:
  `original<TAB>k`), numeric ids too. Bad input is refused before anything
  is written.

  Args:
    log_path: MovieLens `ratings.dat` (`user::item::rating::timestamp`), CSV
      or TSV with or without a header; see logs.read_log. Ids may be any
      text; timestamps must be finite numbers.
    out_dir, name: where the `{name}.*` files are written.
    num_negatives, seed: negatives per user (99 in NCF), sampling seed.
    min_interactions: minimum distinct items per kept user.
    fmt: "auto", "movielens", "csv" or "tsv" (logs.read_log).
  """
  split_output.check_output(out_dir, name, seed, inputs=[log_path])
  users, items, times, id_maps = logs.positives(log_path, min_interactions,
                                                 fmt)
  if times is None:
    logging.warning("%s: no timestamps: each user's last line in the file is "
                    "held out", log_path)
    times = np.arange(len(users), dtype=float)
  rng = np.random.Generator(np.random.PCG64(seed))
  split, train_times, test_times = ncf_split(
      log_path, name, users, items, times, users.max() + 1, items.max() + 1,
      num_negatives, rng)
  return split_output.write_split(split, out_dir, name, train_times,
                                  test_times, id_maps)


PICKS = ("latest", "random", "auto")


def holdout_split(ncf_dir, name, out_dir, out_name=None, seed=0,
                  pick="latest") -> NCFData:
  """The tuning split of paper App. A.2, built from an NCF training file only.

  pick="latest": each user's latest training interaction (by the timestamp
  column; equal timestamps leave the line appearing last in the file) becomes
  the tuning test item, as NCF held out the final test item. When all
  timestamps are equal (e.g. a file rebuilt without them) that is file
  order, which is biased where the file is not in time order (sorted by item
  id, it holds out each user's highest, i.e. newest and rarest, item): a
  warning says so. pick="random": a uniformly random interaction per user
  (seeded), the unbiased choice when time is unknown. pick="auto": "latest"
  where the timestamps differ, else "random" (logged). Its negatives, as many
  per user as the NCF test file has, are sampled uniformly from items the
  user has no training interaction with (among the item ids of the training
  file); the rest is the tuning training set. Nothing of the final test
  items or negatives is used: their files give only the user count and the
  number of negatives. Written as
  NCF files `{out_dir}/{out_name}.*` (default name `{name}.holdout`).
  """
  out_name = out_name or f"{name}.holdout"
  split_output.check_output(out_dir, out_name, seed, inputs=[
      pathlib.Path(ncf_dir) / f"{name}.{suffix}" for suffix in data.SUFFIXES])
  split, train_times, test_times = holdout(ncf_dir, name, out_name, seed, pick)
  return split_output.write_split(split, out_dir, out_name, train_times,
                                  test_times)


def holdout(ncf_dir, name, out_name, seed=0, pick="latest"):
  """holdout_split's split in memory, every check made and nothing written:
  (NCFData, train times, test times) for split_output.write_split."""
  if pick not in PICKS:
    raise ValueError(f"holdout_split: pick={pick!r}, expected one of {PICKS}")
  full = data.load_ncf(ncf_dir, name)  # validates all three files
  train_path = pathlib.Path(ncf_dir) / f"{name}.train.rating"
  log = logs.read_log(train_path, "blank")
  users = np.array([int(u) for u in log.user_ids], np.int64)[log.users]
  items = np.array([int(i) for i in log.item_ids], np.int64)[log.items]
  # 3-column files (no timestamp) are read by data.py with timestamps 0.
  times = np.zeros(len(users), np.int64) if log.times is None else log.times
  # Negatives come from the items of the training file: the ids that occur
  # only in the final test files are not known here.
  num_items = int(items.max()) + 1
  # Distinct items: ncf_split keeps one copy of a repeated pair.
  counts = np.bincount(np.unique(users * num_items + items) // num_items,
                       minlength=full.num_users)
  if (counts < 2).any():
    user = int(np.argmin(counts))
    raise DataError(
        f"{train_path}: user {user} has {counts[user]} distinct training "
        "items; the tuning split needs >= 2 (one held out, one kept)")
  if pick == "auto":  # a 3-column file, or one rebuilt with a constant
    pick = "random" if np.all(times == times[0]) else "latest"
    logging.info("%s: the tuning test item is each user's %s interaction",
                 train_path, pick)
  if pick == "latest" and np.all(times == times[0]):
    logging.warning(
        "%s: every timestamp is %s, so the 'latest' interaction is the last "
        "line in file order; if the file is not in time order this biases the "
        "tuning test set (use pick='random', CLI --pick=random)", train_path,
        times[0])
  rng = np.random.Generator(np.random.PCG64(seed))
  rank = rng.permutation(len(users)) if pick == "random" else None
  return ncf_split(train_path, out_name, users, items, times, full.num_users,
                   num_items, full.test_negatives.shape[1], rng, rank)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(_LOG.value) == bool(_HOLDOUT_OF.value):
    raise app.UsageError("give exactly one of --log (a raw log to split) and "
                         "--holdout_of (an NCF folder to make a tuning split "
                         "of)")
  name = _OUT_NAME.value or f"{_NAME.value}.holdout"
  name = _NAME.value if _LOG.value else name
  files = (list(item_lists.FILES) if _FORMAT.value == "lists" else
           [f"{name}.{suffix}" for suffix in data.SUFFIXES])
  files += [f"{_NAME.value}.{suffix}" for suffix in split_output.MAPS
            if _LOG.value]
  try:  # fresh here, not in the library: compare rebuilds a split cut short
    split_output.check_output(_OUT_DIR.value, name, _SEED.value, files,
                              fresh=True)
    if _FORMAT.value == "lists":
      split = (item_lists.build_split(
          _LOG.value, _OUT_DIR.value, _NAME.value, _TEST_FRACTION.value,
          _SEED.value, _MIN_INTERACTIONS.value, _FMT.value) if _LOG.value else
               item_lists.holdout_split(_HOLDOUT_OF.value, _OUT_DIR.value,
                                        _TEST_FRACTION.value, _SEED.value,
                                        _NAME.value))
    elif _LOG.value:
      split = build_split(_LOG.value, _OUT_DIR.value, _NAME.value,
                          _NUM_NEGATIVES.value, _SEED.value,
                          _MIN_INTERACTIONS.value, _FMT.value)
    else:
      split = holdout_split(_HOLDOUT_OF.value, _NAME.value, _OUT_DIR.value,
                            _OUT_NAME.value or None, _SEED.value, _PICK.value)
  except DataError as e:  # input problems: one line, no traceback
    sys.exit(f"error: {e}")
  if _FORMAT.value == "lists":
    print(f"{_OUT_DIR.value}/{{train,test}}.txt: {split.num_users} users, "
          f"{split.num_items} items, {len(split.train_users)} training and "
          f"{len(split.test_users)} test pairs")
  else:
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
      "order) or a random one (for files without real timestamps); auto: "
      "random where the timestamps are all equal, else latest.")
  _OUT_DIR = flags.DEFINE_string("out_dir", None, "Where NCF files go.")
  _NAME = flags.DEFINE_string("name", None, "Dataset name: {name}.* files.")
  _NUM_NEGATIVES = flags.DEFINE_integer("num_negatives", 99,
                                        "Negatives per user (NCF: 99).")
  _SEED = flags.DEFINE_integer("seed", 0, "Negative sampling seed.")
  _MIN_INTERACTIONS = flags.DEFINE_integer(
      "min_interactions", 1, "Minimum distinct items of a kept user (>= 2).")
  _FMT = flags.DEFINE_enum("fmt", "auto", list(logs.FORMATS), "Log format.")
  _FORMAT = flags.DEFINE_enum(
      "format", "ncf", ["ncf", "lists"], "Write NCF files (one latest test "
      "item and sampled negatives per user) or item lists (train.txt, "
      "test.txt: a random --test_fraction of each user's items held out; "
      "with --holdout_of, of its training items: the tuning split).")
  _TEST_FRACTION = flags.DEFINE_float(
      "test_fraction", 0.2, "--format=lists: share of each user's items held "
      "out (NGCF / LightGCN's Gowalla: 0.2).")
  flags.mark_flags_as_required(["out_dir", "name"])
  app.run(main)
