"""Consistency checks across the three NCF files, run after they are parsed.

Each refusal is a DataError naming the file and line; what the NCF protocol
tolerates but a user should know is logged. No JAX here: data.py uses it.
"""

import pathlib

from absl import logging
import numpy as np

# 1 + the largest item id is the catalogue size (models and evaluation index
# items by id). A stray id such as 10,000,000 among 40 items would give
# embedding tables of 10 million rows, so a catalogue larger than
# ID_SLACK_FACTOR x (the number of distinct ids) + ID_SLACK is refused. Files
# numbered 0.. (ML-1M: 3,706 items, Pinterest: 9,916, all used) pass easily.
ID_SLACK_FACTOR = 2
ID_SLACK = 1000


class DataError(ValueError):
  """Malformed or inconsistent dataset input; names file, line and problem."""


def check_one_per_user(path, users, num_users) -> None:
  """Requires `users` to hold each of 0..num_users-1 exactly once."""
  out = np.flatnonzero(users >= num_users)
  if out.size:
    raise DataError(f"{path}:{out[0] + 1}: user {users[out[0]]} out of range: "
                    f"need one line for each user 0..{num_users - 1}")
  _, first = np.unique(users, return_index=True)
  if len(first) < len(users):
    row = np.setdiff1d(np.arange(len(users)), first)[0]
    raise DataError(f"{path}:{row + 1}: second line for user {users[row]}")
  if len(users) < num_users:
    missing = np.setdiff1d(np.arange(num_users), users)[:10].tolist()
    raise DataError(f"{path}: no line for user(s) {missing}: need one line "
                    f"for each user 0..{num_users - 1}")


def check_ids(files, what="item") -> int:
  """Refuses a catalogue far larger than its distinct item ids (or, with
  what="user", a user count far larger than the distinct users); returns it.

  `files` holds (path, item ids [rows, columns]) or (path, item ids [rows],
  line of each row) in the order to search; the first line with an id
  beyond the bound is named (row r is line r + 1 unless lines are given).
  """
  flat = [entry[1].ravel() for entry in files]
  num_items = 1 + max(int(ids.max(initial=-1)) for ids in flat)
  total = sum(ids.size for ids in flat)
  if num_items <= ID_SLACK_FACTOR * total + ID_SLACK:  # else surely refused
    used = np.zeros(num_items, bool)
    for ids in flat:
      used[ids] = True
    distinct = int(used.sum())
  else:
    distinct = len(np.unique(np.concatenate(flat)))
  bound = ID_SLACK_FACTOR * distinct + ID_SLACK
  if num_items <= bound:
    return num_items
  for path, ids, *lines in files:
    rows = np.flatnonzero((ids >= bound).reshape(len(ids), -1).any(axis=1))
    if rows.size:
      item = int(ids.reshape(len(ids), -1)[rows[0]].max())
      line = lines[0][rows[0]] if lines else rows[0] + 1
      raise DataError(
          f"{path}:{line}: {what} {item} is far beyond the {distinct} "
          f"distinct {what} ids of the dataset's files (the count is 1 + the "
          f"largest id; ids >= {ID_SLACK_FACTOR} x {distinct} + {ID_SLACK} = "
          f"{bound} are refused as strays): number the {what}s 0.., as "
          "python -m dot_vs_learned.splits does")
  raise AssertionError("the largest id lies in no file")


def pair_keys(users, items, num_items) -> np.ndarray:
  """user * num_items + item, one int64 per (user, item) pair."""
  return users.astype(np.int64) * num_items + items


def is_in(keys, sorted_keys) -> np.ndarray:
  """np.isin by binary search in sorted keys (np.unique is slow in NumPy 2)."""
  if not len(sorted_keys):
    return np.zeros(np.shape(keys), bool)
  at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
  return sorted_keys[at] == keys


def first_pairs(path, pairs, num_items) -> np.ndarray:
  """Which rows of `pairs` ([lines, 2] (user, item), in file order) are a
  pair's first line. A repeated pair is logged, naming its line, and read
  once: NCF's loader reads the file into a 0/1 matrix (He et al.'s
  Dataset.py), where a repeat changes nothing; trained twice, it would count
  twice. NCF's ML-1M file has none."""
  keys = pair_keys(pairs[:, 0], pairs[:, 1], num_items)
  _, first = np.unique(keys, return_index=True)
  keep = np.zeros(len(keys), bool)
  keep[first] = True
  if not keep.all():
    row = int(np.flatnonzero(~keep)[0])
    logging.warning("%s:%d: user %d, item %d is already on line %d; %d "
                    "repeated training pairs are read once", path, row + 1,
                    pairs[row, 0], pairs[row, 1],
                    int(np.flatnonzero(keys == keys[row])[0]) + 1,
                    int((~keep).sum()))
  return keep


def check_no_leakage(test_path, train_path, test, train, num_items) -> None:
  """Refuses a test pair (user, test item) that is also a training pair.

  `test` and `train` are [lines, 2] (user, item) in file order.
  """
  train_keys = pair_keys(train[:, 0], train[:, 1], num_items)
  test_keys = pair_keys(test[:, 0], test[:, 1], num_items)
  leaks = np.flatnonzero(is_in(test_keys, np.sort(train_keys)))
  if leaks.size:
    row = leaks[0]
    train_line = int(np.flatnonzero(train_keys == test_keys[row])[0]) + 1
    raise DataError(
        f"{test_path}:{row + 1}: {leaks.size} users' test item is also in "
        f"{pathlib.Path(train_path).name} (first: line {row + 1}, user "
        f"{test[row, 0]}, item {test[row, 1]}, training line {train_line}); "
        "a held-out item must not be a training pair: rebuild the split with "
        "python -m dot_vs_learned.splits")


def warn_if_suspicious(data, paths, neg_users) -> None:
  """Logs a warning for what the protocol tolerates but a user should know.

  Users or test items without training interactions (their embeddings stay
  at the initialization; the published ML-1M test file has 2 such items),
  and sampled negatives that are training positives of the same user (they
  are ranked as negatives, as NCF's evaluator does; none in ML-1M).
  """
  train_path, test_path, neg_path = paths
  idle = np.flatnonzero(np.bincount(data.train_users,
                                    minlength=data.num_users) == 0)
  if idle.size:
    logging.warning("%s: %d users have no training interaction (first: "
                    "user %d)", train_path, idle.size, idle[0])
  counts = np.bincount(data.train_items, minlength=data.num_items)
  unseen = np.flatnonzero(counts[data.test_items] == 0)
  if unseen.size:
    logging.warning("%s: %d test items never occur in %s (first: user %d, "
                    "item %d)", test_path, unseen.size, train_path.name,
                    unseen[0], data.test_items[unseen[0]])
  positives = np.sort(pair_keys(data.train_users, data.train_items,
                                 data.num_items))
  users = np.arange(data.num_users)[:, None]
  clash = is_in(pair_keys(users, data.test_negatives, data.num_items),
                 positives)
  if clash.any():
    user = int(np.flatnonzero(clash.any(axis=1))[0])
    line = int(np.flatnonzero(neg_users == user)[0]) + 1
    logging.warning("%s: %d sampled negatives of %d users are training "
                    "positives of that user (first: line %d, user %d); they "
                    "are ranked as negatives", neg_path, clash.sum(),
                    clash.any(axis=1).sum(), line, user)
