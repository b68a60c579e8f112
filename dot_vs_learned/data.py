"""The NCF file format: a validating loader and an atomic writer.

The NCF protocol (He et al. 2017, Sec. 4.1; Rendle et al. 2020, Sec. 5) holds
out each user's latest interaction and ranks it against sampled negatives. A
dataset is three files: `{name}.train.rating`, `{name}.test.rating` and
`{name}.test.negative`. Where datasets come from (generated, downloaded, a
folder): datasets.py.
"""

import os
import pathlib
import re
import warnings
from typing import NamedTuple

from absl import logging
import numpy as np

from dot_vs_learned import atomic

SUFFIXES = ("train.rating", "test.rating", "test.negative")
DOWNLOADABLE = ("ml-1m", "pinterest-20")  # pinned in datasets.CHECKSUMS

_RATING_COLUMNS = ("user", "item", "rating", "timestamp")
_MAX_ID = 2**31 - 1  # ids are stored as int32
_BLANK = np.zeros(256, bool)
_BLANK[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.split() splits on
_HEADER = re.compile(rb"\((\d+),(\d+)\)")


class DataError(ValueError):
  """Malformed or inconsistent dataset input; names file, line and problem."""


class NCFData(NamedTuple):
  """A dataset under the NCF protocol; ids are 0..num_users-1, 0..num_items-1."""
  name: str
  num_users: int
  num_items: int
  train_users: np.ndarray  # int32 [N], one row per training positive
  train_items: np.ndarray  # int32 [N]
  test_items: np.ndarray  # int32 [num_users], each user's held-out item
  test_negatives: np.ndarray  # int32 [num_users, K], file order, repeats kept


# ----------------------------------------------------------------- parsing ---


def read_bytes(path) -> bytes:
  """Returns a file's bytes, CRLF normalized and trailing whitespace cut."""
  data = pathlib.Path(path).read_bytes().replace(b"\r\n", b"\n").rstrip()
  if not data:
    raise DataError(f"{path}: file is empty")
  return data


def check_columns(path, data, ncols, first_line=1, unit="columns") -> int:
  """Requires `ncols` blank-separated fields on every line; returns lines."""
  # Vectorized count: a field starts at a non-blank byte after a blank one.
  buf = np.frombuffer(data, np.uint8)
  blank = _BLANK[buf]
  start = ~blank
  start[1:] &= blank[:-1]
  starts = np.flatnonzero(start)
  before = np.searchsorted(starts, np.flatnonzero(buf == ord("\n")))
  counts = np.diff(before, prepend=0, append=len(starts))
  bad = np.flatnonzero(counts != ncols)
  if bad.size:
    raise DataError(f"{path}:{bad[0] + first_line}: expected {ncols} {unit}, "
                    f"found {counts[bad[0]]}")
  return len(counts)


def convert_tokens(path, tokens, name, dtype, first_line=1) -> np.ndarray:
  """Converts byte tokens to `dtype`, naming the first line that fails."""
  try:
    return tokens.astype(dtype)
  except (ValueError, OverflowError):
    pass
  for row, token in enumerate(tokens):  # error path only
    try:
      np.array([token]).astype(dtype)
    except (ValueError, OverflowError):
      kind = "an integer" if dtype == np.int64 else "a number"
      text = token.decode(errors="replace")
      raise DataError(f"{path}:{row + first_line}: {name} {text!r} is not "
                      f"{kind}") from None
  raise AssertionError("a token failed in bulk but not alone")


def _parse_table(path, data, names, num_ids, unit="columns") -> np.ndarray:
  """Parses numeric columns; returns the first `num_ids` as int64 [lines, .]."""
  n = check_columns(path, data, len(names), unit=unit)
  try:  # Fast path: all fields plain integers, as in the published files.
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      table = np.fromstring(data, dtype=np.int64, sep=" ")
    ids = table.reshape(n, len(names))[:, :num_ids]
  except (ValueError, DeprecationWarning):
    tokens = np.array(data.split()).reshape(n, len(names))
    ids = np.stack([convert_tokens(path, tokens[:, c], names[c], np.int64)
                    for c in range(num_ids)], axis=1)
    for c in range(num_ids, len(names)):  # ratings may be floats like "4.5"
      convert_tokens(path, tokens[:, c], names[c], np.float64)
  bad = (ids < 0) | (ids > _MAX_ID)
  if bad.any():
    row, col = np.argwhere(bad)[0]
    raise DataError(f"{path}:{row + 1}: {names[col]} {ids[row, col]} is not a "
                    f"valid id (an integer in 0..{_MAX_ID})")
  return ids


def _parse_negatives(path, data):
  """Parses `(user,item) neg...` lines; returns users, items, negatives."""
  heads, rests = [], []
  for no, line in enumerate(data.split(b"\n"), 1):
    fields = line.split(None, 1)
    match = _HEADER.fullmatch(fields[0]) if fields else None
    if match is None:
      head = fields[0].decode(errors="replace") if fields else ""
      raise DataError(f"{path}:{no}: malformed header {head!r}, expected "
                      "'(user,item)'")
    heads.append((int(match[1]), int(match[2])))
    rests.append(fields[1] if len(fields) > 1 else b"")
  k = len(rests[0].split())
  if k == 0:
    raise DataError(f"{path}:1: no negatives after the header")
  negatives = _parse_table(path, b"\n".join(rests), ("negative",) * k, k,
                           unit="negatives (as on line 1)")
  heads = np.array(heads, np.int64)
  return heads[:, 0], heads[:, 1], negatives


def _check_one_per_user(path, users, num_users) -> None:
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


def load_ncf(directory, name) -> NCFData:
  """Loads and validates the three NCF files `{directory}/{name}.*`.

  num_users and num_items are 1 + the largest id over the three files.
  Negatives equal to the user's test item or to one of its training items are
  kept as in the file (the published ML-1M file has 156 users whose test item
  is among its own negatives); the evaluator masks them.
  """
  paths = [pathlib.Path(directory) / f"{name}.{s}" for s in SUFFIXES]
  missing = [p.name for p in paths if not p.is_file()]
  if missing:
    hint = ("leave data.dir unset and set --config.data.download=True"
            if name in DOWNLOADABLE else "see the NCF repository's Data/")
    raise DataError(f"{directory}: missing {', '.join(missing)}; put "
                    f"{name}.{{{','.join(SUFFIXES)}}} there, or {hint}")
  train_path, test_path, neg_path = paths
  train = _parse_table(train_path, read_bytes(train_path), _RATING_COLUMNS, 2)
  test = _parse_table(test_path, read_bytes(test_path), _RATING_COLUMNS, 2)
  num_users = len(test)
  _check_one_per_user(test_path, test[:, 0], num_users)
  test_items = np.empty(num_users, np.int64)
  test_items[test[:, 0]] = test[:, 1]
  stray = np.flatnonzero(train[:, 0] >= num_users)
  if stray.size:
    raise DataError(f"{train_path}:{stray[0] + 1}: user {train[stray[0], 0]} "
                    f"has no line in {test_path} (users 0..{num_users - 1})")
  neg_users, neg_items, negatives = _parse_negatives(neg_path, read_bytes(neg_path))
  _check_one_per_user(neg_path, neg_users, num_users)
  wrong = np.flatnonzero(test_items[neg_users] != neg_items)
  if wrong.size:
    row, user = wrong[0], neg_users[wrong[0]]
    raise DataError(f"{neg_path}:{row + 1}: header ({user},{neg_items[row]}) "
                    f"does not match {test_path}, which holds "
                    f"({user},{test_items[user]})")
  test_negatives = np.empty_like(negatives)
  test_negatives[neg_users] = negatives
  num_items = 1 + max(train[:, 1].max(), test_items.max(), negatives.max())
  data = NCFData(name, num_users, int(num_items),
                 train[:, 0].astype(np.int32), train[:, 1].astype(np.int32),
                 test_items.astype(np.int32), test_negatives.astype(np.int32))
  _warn_if_suspicious(data, paths, neg_users)
  return data


def _warn_if_suspicious(data, paths, neg_users) -> None:
  """Logs a warning for what the protocol tolerates but a user should know.

  Users or test items without training interactions (their embeddings stay
  at the initialization; the published ML-1M test file has 2 such items),
  and sampled negatives that are training positives of the same user (they
  are ranked as negatives, as NCF's evaluator does; none in ML-1M).
  """
  train_path, test_path, neg_path = paths
  idle = np.setdiff1d(np.arange(data.num_users), data.train_users)
  if idle.size:
    logging.warning("%s: %d users have no training interaction (first: "
                    "user %d)", train_path, idle.size, idle[0])
  unseen = np.flatnonzero(~np.isin(data.test_items, data.train_items))
  if unseen.size:
    logging.warning("%s: %d test items never occur in %s (first: user %d, "
                    "item %d)", test_path, unseen.size, train_path.name,
                    unseen[0], data.test_items[unseen[0]])
  width = np.int64(data.num_items)
  positives = np.unique(data.train_users * width + data.train_items)
  keys = np.arange(data.num_users)[:, None] * width + data.test_negatives
  clash = np.isin(keys, positives)
  if clash.any():
    user = int(np.flatnonzero(clash.any(axis=1))[0])
    line = int(np.flatnonzero(neg_users == user)[0]) + 1
    logging.warning("%s: %d sampled negatives of %d users are training "
                    "positives of that user (first: line %d, user %d); they "
                    "are ranked as negatives", neg_path, clash.sum(),
                    clash.any(axis=1).sum(), line, user)


def _rating_lines(users, items, timestamps) -> str:
  """Formats `user item 1 timestamp` lines, tab-separated."""
  return "".join(f"{u}\t{i}\t1\t{t}\n" for u, i, t in zip(
      users, items.tolist(), np.asarray(timestamps, np.int64).tolist()))


def write_ncf(data: NCFData, out_dir, name, *, train_timestamps=None,
              test_timestamps=None) -> None:
  """Writes `data` as the three NCF files, each atomically (temp + rename).

  The rating column is 1 (positives are binary); timestamps are written as
  integers and default to 0.
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  users = range(data.num_users)
  texts = [
      _rating_lines(data.train_users.tolist(), data.train_items,
                    np.zeros(len(data.train_users)) if train_timestamps is None
                    else train_timestamps),
      _rating_lines(users, data.test_items, np.zeros(data.num_users)
                    if test_timestamps is None else test_timestamps),
      "".join(f"({u},{i})\t" + "\t".join(map(str, row)) + "\n"
              for u, i, row in zip(users, data.test_items.tolist(),
                                   data.test_negatives.tolist())),
  ]
  temps = []
  try:
    for suffix, text in zip(SUFFIXES, texts):
      fd, temp = atomic.make_temp(out, f".{name}.{suffix}.")
      temps.append(temp)
      with os.fdopen(fd, "w") as f:
        f.write(text)
    for suffix, temp in zip(SUFFIXES, temps):
      os.replace(temp, out / f"{name}.{suffix}")
  finally:
    for temp in temps:
      if os.path.exists(temp):
        os.remove(temp)
