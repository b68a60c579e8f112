"""The item-list format of the NGCF / LightGCN splits (Gowalla, Yelp2018,
Amazon-Book): a validating loader, an atomic writer and a split builder.

A dataset is a folder with `train.txt` and `test.txt`; each line is one
user's `user item item ...` (blank-separated ids from 0), and a user may
have several test items. These splits are evaluated by full ranking (no
sampled negatives): Recall@K and NDCG@K over each user's test items
(full_ranking.py).
"""

import os
import pathlib
from typing import NamedTuple

from absl import logging
import numpy as np

from dot_vs_learned import atomic
from dot_vs_learned import data as data_lib
from dot_vs_learned import data_checks
from dot_vs_learned import logs
from dot_vs_learned import split_output
from dot_vs_learned.data_checks import DataError

FILES = ("train.txt", "test.txt")
_MAX_ID = 2**31 - 2  # ids are int32, and so is 1 + the largest id


class ListData(NamedTuple):
  """(user, item) pairs of both files; ids from 0 to num_users - 1 and
  num_items - 1."""
  name: str
  num_users: int
  num_items: int
  train_users: np.ndarray  # int32 [N]
  train_items: np.ndarray  # int32 [N]
  test_users: np.ndarray  # int32 [T], several pairs per user allowed
  test_items: np.ndarray  # int32 [T]


def _id(path, no, what, token) -> int:
  # No sign, no "1_0"; over 10 digits is over _MAX_ID (and int() refuses
  # more than 4,300).
  value = int(token) if token.isdigit() and len(token) <= 10 else -1
  if not 0 <= value <= _MAX_ID:
    text = token.decode(errors="replace")[:40]
    raise DataError(f"{path}:{no}: {what} {text!r} is not a valid id (an "
                    f"integer in 0..{_MAX_ID})")
  return value


def parse(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One file's pairs: users, items and each pair's line number (int64)."""
  users, items, lines, seen, bare = [], [], [], {}, []
  for no, line in enumerate(data_lib.read_bytes(path).split(b"\n"), 1):
    fields = line.split()
    if not fields:
      raise DataError(f"{path}:{no}: empty line, expected 'user item ...'")
    user = _id(path, no, "user", fields[0])
    if user in seen:
      raise DataError(f"{path}:{no}: user {user} already has line "
                      f"{seen[user]}")
    seen[user] = no
    row = [_id(path, no, "item", token) for token in fields[1:]]
    if len(set(row)) < len(row):
      twice = next(i for i in row if row.count(i) > 1)
      raise DataError(f"{path}:{no}: item {twice} appears twice for user "
                      f"{user}")
    if not row:
      bare.append(no)
    users += [user] * len(row)
    items += row
    lines += [no] * len(row)
  if bare:
    logging.warning("%s: %d lines name a user and no items (first: line %d)",
                    path, len(bare), bare[0])
  return (np.array(users, np.int64), np.array(items, np.int64),
          np.array(lines, np.int64))


def _check_leakage(train_path, test_path, train, test, num_items) -> None:
  """Refuses a test pair that is also a training pair, naming both lines."""
  train_keys = data_checks.pair_keys(train[0], train[1], num_items)
  test_keys = data_checks.pair_keys(test[0], test[1], num_items)
  leaks = np.flatnonzero(data_checks.is_in(test_keys, np.sort(train_keys)))
  if leaks.size:
    row = leaks[0]
    line = train[2][np.flatnonzero(train_keys == test_keys[row])[0]]
    raise DataError(
        f"{test_path}:{test[2][row]}: {leaks.size} test pairs are also "
        f"training pairs (first: user {test[0][row]}, item {test[1][row]}, "
        f"{pathlib.Path(train_path).name} line {line}); a held-out item must "
        "not be a training pair")


def load_lists(directory, name=None) -> ListData:
  """Loads and validates `{directory}/train.txt` and `test.txt`.

  Refused, naming the file and line: a malformed id, an empty line, a user
  with two lines in one file, an item twice on a line, a test pair that is
  a training pair, an item or user id far beyond the distinct ones; and a
  file without any pairs.
  num_users and num_items are 1 + the largest ids of both files. Users
  without training items or without test items are allowed (logged).
  """
  directory = pathlib.Path(directory)
  data_lib.check_folder(directory)
  paths = [directory / f for f in FILES]
  missing = [p.name for p in paths if not p.exists()]
  if missing:
    raise DataError(f"{directory}: missing {', '.join(missing)}; an item-list "
                    "dataset is a folder with train.txt and test.txt")
  train, test = parse(paths[0]), parse(paths[1])
  if not train[0].size:  # training would gather from an empty batch
    raise DataError(f"{paths[0]}: no training pairs (no line has an item)")
  if not test[0].size:
    raise DataError(f"{paths[1]}: no test pairs")
  num_items = data_checks.check_ids(
      [(path, items, lines) for path, (_, items, lines) in zip(paths,
                                                             (train, test))])
  _check_leakage(*paths, train, test, num_items)
  num_users = data_checks.check_ids(
      [(path, users, lines) for path, (users, _, lines) in zip(paths,
                                                             (train, test))],
      what="user")
  idle = np.setdiff1d(np.unique(test[0]), train[0])
  if idle.size:
    logging.warning("%s: %d test users have no training items (first: user "
                    "%d)", paths[1], idle.size, idle[0])
  untested = np.setdiff1d(np.unique(train[0]), test[0])
  if untested.size:
    logging.warning("%s: %d training users have no test items, so are not "
                    "evaluated (first: user %d)", paths[1], untested.size,
                    untested[0])
  as32 = lambda a: a.astype(np.int32)
  return ListData(name or directory.name, num_users, num_items,
                  as32(train[0]), as32(train[1]), as32(test[0]),
                  as32(test[1]))


def _lines(users, items, num_users) -> str:
  """One `user item item ...` line per user with items, in user order."""
  order = np.lexsort((items, users))
  users, items = users[order], items[order]
  starts = np.searchsorted(users, np.arange(num_users + 1))
  return "".join(
      f"{u} " + " ".join(map(str, items[a:b].tolist())) + "\n"
      for u, (a, b) in enumerate(zip(starts[:-1], starts[1:])) if b > a)


def write_lists(data: ListData, out_dir) -> None:
  """Writes train.txt and test.txt, each atomically (temp + rename)."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  for filename, users, items in (
      (FILES[0], data.train_users, data.train_items),
      (FILES[1], data.test_users, data.test_items)):
    text = _lines(np.asarray(users), np.asarray(items), data.num_users)
    fd, temp = atomic.make_temp(out, f".{filename}.")
    try:
      with os.fdopen(fd, "w") as f:
        f.write(text)
      os.replace(temp, out / filename)
    finally:
      if os.path.exists(temp):
        os.remove(temp)


def holdout_fraction(users, items, num_users, fraction, seed):
  """A per-user random holdout: (train mask, test mask) over the pairs.

  Each user with n >= 2 pairs gives round(fraction * n) of them, at least 1
  and at most n - 1, chosen uniformly by the seeded generator; a user with
  one pair keeps it for training.
  """
  if not 0 < fraction < 1:
    raise ValueError(f"fraction={fraction}: must be in (0, 1)")
  rng = np.random.Generator(np.random.PCG64(seed))
  order = np.lexsort((rng.random(len(users)), users))  # shuffled per user
  counts = np.bincount(users, minlength=num_users)
  take = np.clip(np.rint(fraction * counts), 1, np.maximum(counts - 1, 0))
  starts = np.cumsum(counts) - counts
  place = np.arange(len(users)) - np.repeat(starts, counts)
  test = np.zeros(len(users), bool)
  test[order] = place < np.repeat(take, counts)
  return ~test, test


def build_split(log_path, out_dir, name, test_fraction=0.2, seed=0,
                min_interactions=1, fmt="auto") -> ListData:
  """Item lists from a raw log; returns them loaded back.

  The positives, dropped users and numbering are splits.build_split's (see
  logs.positives; repeated pairs count once); each user's test items are
  a seeded random `test_fraction` of them (holdout_fraction), as the
  Gowalla split of NGCF / LightGCN holds out 20%. `{name}.user_map.tsv`
  and `{name}.item_map.tsv` map the log's ids to the numbers.
  """
  split_output.check_output(out_dir, name, seed, files=FILES + tuple(
      f"{name}.{suffix}" for suffix in split_output.MAPS), inputs=[log_path])
  if not 0 < test_fraction < 1:
    raise DataError(f"test_fraction={test_fraction}: must be in (0, 1)")
  users, items, _, id_maps = logs.positives(log_path, min_interactions,
                                              fmt)
  num_users, num_items = int(users.max()) + 1, int(items.max()) + 1
  keys = np.unique(users.astype(np.int64) * num_items + items)
  users, items = keys // num_items, keys % num_items
  train, test = holdout_fraction(users, items, num_users, test_fraction,
                                 seed)
  split = ListData(name, num_users, num_items, users[train], items[train],
                   users[test], items[test])
  try:
    write_lists(split, out_dir)
    split_output.write_id_maps(out_dir, name, id_maps)
  except OSError as e:
    raise DataError(f"out_dir={out_dir}: cannot write the split: {e}") from None
  return load_lists(out_dir, name)


def holdout_split(directory, out_dir, test_fraction=0.2, seed=0,
                  name=None) -> ListData:
  """The tuning split of an item-list dataset: a seeded random
  `test_fraction` of each user's training items (holdout_fraction) becomes
  the tuning test set; the rest its training set. test.txt is validated
  with train.txt but nothing of it is used. Written to `out_dir` as
  train.txt and test.txt; returned loaded back."""
  directory = pathlib.Path(directory)
  split_output.check_output(out_dir, directory.resolve().name, seed,
                            files=FILES, inputs=[directory / f for f in FILES])
  split = holdout(directory, test_fraction, seed, name)
  try:
    write_lists(split, out_dir)
  except OSError as e:
    raise DataError(f"out_dir={out_dir}: cannot write the split: {e}") from None
  return load_lists(out_dir, split.name)


def holdout(directory, test_fraction=0.2, seed=0, name=None) -> ListData:
  """holdout_split's split in memory, every check made and nothing written."""
  if not 0 < test_fraction < 1:
    raise DataError(f"test_fraction={test_fraction}: must be in (0, 1)")
  full = load_lists(directory, name)
  train, test = holdout_fraction(full.train_users, full.train_items,
                                 full.num_users, test_fraction, seed)
  if not test.any():
    raise DataError(f"{pathlib.Path(directory) / FILES[0]}: no user has 2 or "
                    "more training items, so a tuning split holds none out")
  return full._replace(
      name=f"{full.name}.holdout", train_users=full.train_users[train],
      train_items=full.train_items[train], test_users=full.train_users[test],
      test_items=full.train_items[test])
