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
import stat
import warnings
from typing import NamedTuple

from absl import logging
import numpy as np

from dot_vs_learned import atomic
from dot_vs_learned import checks
from dot_vs_learned import data_checks
from dot_vs_learned.data_checks import DataError  # data.DataError, as ever

SUFFIXES = ("train.rating", "test.rating", "test.negative")
DOWNLOADABLE = ("ml-1m", "pinterest-20")  # pinned in datasets.CHECKSUMS

# A rating file has 4 columns, or 3 as published by other repositories
# (no timestamp); every line of a file has as many as its first line.
_RATING_COLUMNS = ("user", "item", "rating", "timestamp")
_MAX_ID = 2**31 - 2  # ids are int32, and so is 1 + the largest id
_BLANK = np.zeros(256, bool)
_BLANK[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.split() splits on
_HEADER = re.compile(rb"\((\d+),(\d+)\)")
_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO",
          stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
          stat.S_ISSOCK: "a socket"}


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
  """Returns a regular file's bytes: a UTF-8 BOM dropped, CR LF and CR made
  LF, trailing whitespace cut. A FIFO or device is refused without blocking,
  and so is a NUL byte (numpy would drop one that ends a token)."""
  try:  # O_NONBLOCK: opening a FIFO must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
  except OSError as e:
    raise DataError(f"{path}: cannot open: {e.strerror}") from None
  mode = os.fstat(fd).st_mode
  if not stat.S_ISREG(mode):
    os.close(fd)
    kind = next((k for test, k in _KINDS.items() if test(mode)), "special")
    raise DataError(f"{path}: {kind}, not a regular file")
  with os.fdopen(fd, "rb") as f:
    try:
      data = f.read()
    except OSError as e:
      raise DataError(f"{path}: cannot read: {e.strerror}") from None
  data = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
  data = data.replace(b"\r", b"\n").rstrip()  # old Mac line ends
  nul = data.find(b"\0")
  if nul >= 0:
    line = data.count(b"\n", 0, nul) + 1
    raise DataError(f"{path}:{line}: a NUL byte (UTF-16 text, a binary "
                    "file, or one cut short by a crash?); expected UTF-8 text")
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
    # A blank line, or CR CR LF line ends (a file converted twice), whose
    # extra CR reads as a line end.
    empty = (" (an empty line, or CR CR LF line ends)" if counts[bad[0]] == 0
             else "")
    raise DataError(f"{path}:{bad[0] + first_line}: expected {ncols} {unit}, "
                    f"found {counts[bad[0]]}{empty}")
  return len(counts)


def convert_tokens(path, tokens, name, dtype, first_line=1) -> np.ndarray:
  """Converts byte tokens to `dtype`, naming the first line that fails."""
  try:
    return tokens.astype(dtype)
  except (ValueError, OverflowError):
    pass
  chunk = 4096  # error path: find the failing chunk in bulk, then the token
  for begin in range(0, len(tokens), chunk):
    try:
      tokens[begin:begin + chunk].astype(dtype)
      continue
    except (ValueError, OverflowError):
      pass
    for row in range(begin, min(begin + chunk, len(tokens))):
      try:
        tokens[row:row + 1].astype(dtype)
      except (ValueError, OverflowError):
        raise _not_a_number(path, row + first_line, name, tokens[row], dtype)
  raise AssertionError("a token failed in bulk but not alone")


def _cut(token: bytes) -> str:
  """A token's text, cut to 40 characters."""
  return checks.shorten(token.decode(errors="replace"))


def _quote(token: bytes) -> str:
  return repr(_cut(token))


def _not_a_number(path, line, name, token, dtype) -> DataError:
  kind = "an integer" if dtype == np.int64 else "a number"
  return DataError(f"{path}:{line}: {name} {_quote(token)} is not {kind}")


def _parse_table(path, data, names, num_ids, unit="columns") -> np.ndarray:
  """Parses numeric columns; returns the first `num_ids` as int64 [lines, .]."""
  n = check_columns(path, data, len(names), unit=unit)
  try:  # Fast path: all fields plain integers, as in the published files.
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      table = np.fromstring(data, dtype=np.int64, sep=" ")
    ids = table.reshape(n, len(names))[:, :num_ids]
  except (ValueError, DeprecationWarning):
    tokens = data.split()
    # No number is 40 bytes long; one such token would widen every cell.
    if max(map(len, tokens)) > 40:
      long = next(i for i, t in enumerate(tokens) if len(t) > 40)
      col = long % len(names)
      raise _not_a_number(path, long // len(names) + 1, names[col],
                          tokens[long], np.int64 if col < num_ids else float)
    tokens = np.array(tokens).reshape(n, len(names))
    ids = np.stack([convert_tokens(path, tokens[:, c], names[c], np.int64)
                    for c in range(num_ids)], axis=1)
    for c in range(num_ids, len(names)):  # ratings may be floats like "4.5"
      convert_tokens(path, tokens[:, c], names[c], np.float64)
    # "nan", "inf" and "1e999" convert, but no rating or timestamp is one.
    bad = np.argwhere(~np.isfinite(tokens[:, num_ids:].astype(np.float64)))
    if bad.size:
      row, col = bad[0][0], bad[0][1] + num_ids
      raise DataError(f"{path}:{row + 1}: {names[col]} "
                      f"{_quote(tokens[row, col])} is not a finite number")
  bad = (ids < 0) | (ids > _MAX_ID)
  if bad.any():
    row, col = np.argwhere(bad)[0]
    # The fast path saturates at 2**63 - 1: quote the token as written.
    token = _cut(data.split(b"\n")[row].split()[col])
    raise DataError(f"{path}:{row + 1}: {names[col]} {token} is not a "
                    f"valid id (an integer in 0..{_MAX_ID})")
  return ids


def _parse_ratings(path, data) -> np.ndarray:
  """Parses a rating file of 4 or 3 columns; returns (user, item) [lines, 2]."""
  ncols = len(data.split(b"\n", 1)[0].split())
  if ncols not in (3, 4):
    raise DataError(f"{path}:1: expected 4 columns (user item rating "
                    f"timestamp) or 3 (user item rating), found {ncols}")
  if ncols == 3:
    logging.warning(
        "%s: 3 columns (user item rating), no timestamp: timestamps are "
        "unknown and taken as 0, so a tuning split of these files must pick "
        "a random item per user (python -m dot_vs_learned.splits "
        "--holdout_of=DIR --name=NAME --pick=random)", path)
  return _parse_table(path, data, _RATING_COLUMNS[:ncols], 2)


def _parse_negatives(path, data):
  """Parses `(user,item) neg...` lines; returns users, items, negatives."""
  heads, rests = [], []
  for no, line in enumerate(data.split(b"\n"), 1):
    fields = line.split(None, 1)
    match = _HEADER.fullmatch(fields[0]) if fields else None
    if match is None:
      head = _quote(fields[0] if fields else b"")
      raise DataError(f"{path}:{no}: malformed header {head}, expected "
                      "'(user,item)'")
    head = [int(g) if len(g) <= 10 else _MAX_ID + 1 for g in match.groups()]
    if max(head) > _MAX_ID:
      raise DataError(f"{path}:{no}: header {_quote(fields[0])} holds an id "
                      f"beyond {_MAX_ID}")
    heads.append(head)
    rests.append(fields[1] if len(fields) > 1 else b"")
  k = len(rests[0].split())
  if k == 0:
    raise DataError(f"{path}:1: no negatives after the header")
  negatives = _parse_table(path, b"\n".join(rests), ("negative",) * k, k,
                           unit="negatives (as on line 1)")
  heads = np.array(heads, np.int64)
  return heads[:, 0], heads[:, 1], negatives


def check_folder(directory) -> None:
  """Refuses a data folder that is something else ("missing files" would
  mislead)."""
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise DataError(f"{directory}: not a folder; data.dir names the folder "
                    "that holds the files")


def load_ncf(directory, name) -> NCFData:
  """Loads and validates the three NCF files `{directory}/{name}.*`.

  Rating files have 4 columns (user item rating timestamp) or 3 (no
  timestamp, as other repositories publish them; a warning notes it).
  num_users and num_items are 1 + the largest id over the three files; a
  stray item id far beyond the distinct ones (data_checks.check_ids), a
  NaN or infinite rating or timestamp and a test pair that is also a
  training pair are refused; a training pair on two lines is read once,
  with a warning (data_checks.first_pairs). Negatives equal to the
  user's test item or to one of its training items are kept as in the file
  (the published ML-1M file has 156 users whose test item is among its own
  negatives); the evaluator masks them.
  """
  check_folder(directory)
  paths = [pathlib.Path(directory) / f"{name}.{s}" for s in SUFFIXES]
  missing = [p.name for p in paths if not p.exists()]
  if missing:
    hint = ("leave data.dir unset and set --config.data.download=True"
            if name in DOWNLOADABLE else "see the NCF repository's Data/")
    raise DataError(f"{directory}: missing {', '.join(missing)}; put "
                    f"{name}.{{{','.join(SUFFIXES)}}} there, or {hint}")
  train_path, test_path, neg_path = paths
  train = _parse_ratings(train_path, read_bytes(train_path))
  test = _parse_ratings(test_path, read_bytes(test_path))
  num_users = len(test)
  data_checks.check_one_per_user(test_path, test[:, 0], num_users)
  test_items = np.empty(num_users, np.int64)
  test_items[test[:, 0]] = test[:, 1]
  stray = np.flatnonzero(train[:, 0] >= num_users)
  if stray.size:
    raise DataError(f"{train_path}:{stray[0] + 1}: user {train[stray[0], 0]} "
                    f"has no line in {test_path} (users 0..{num_users - 1})")
  neg_users, neg_items, negatives = _parse_negatives(neg_path,
                                                     read_bytes(neg_path))
  data_checks.check_one_per_user(neg_path, neg_users, num_users)
  wrong = np.flatnonzero(test_items[neg_users] != neg_items)
  if wrong.size:
    row, user = wrong[0], neg_users[wrong[0]]
    raise DataError(f"{neg_path}:{row + 1}: header ({user},{neg_items[row]}) "
                    f"does not match {test_path}, which holds "
                    f"({user},{test_items[user]})")
  num_items = data_checks.check_ids(
      [(train_path, train[:, 1]), (test_path, test[:, 1]),
       (neg_path, negatives)])
  data_checks.check_no_leakage(test_path, train_path, test, train, num_items)
  train = train[data_checks.first_pairs(train_path, train, num_items)]
  test_negatives = np.empty_like(negatives)
  test_negatives[neg_users] = negatives
  data = NCFData(name, num_users, num_items,
                 train[:, 0].astype(np.int32), train[:, 1].astype(np.int32),
                 test_items.astype(np.int32), test_negatives.astype(np.int32))
  data_checks.warn_if_suspicious(data, paths, neg_users)
  return data


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
