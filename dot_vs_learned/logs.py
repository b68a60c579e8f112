"""Reads raw interaction logs (MovieLens `ratings.dat`, CSV, TSV) for splits.py.

A log is one interaction per line: user, item and optionally a rating and a
timestamp. Ids are any text (`u123`, `42`, `1.5`), compared as written ("7"
and "07" are two users), and numbered 0.. in order of first appearance. A
header line is recognized by its content: it names a user or an item
column, or it holds no number where the lines below hold numbers. Every
refusal is a DataError naming the file and line.
"""

import csv
import gc
import re
from typing import NamedTuple

from absl import logging
import numpy as np

from dot_vs_learned import data
from dot_vs_learned.data import DataError

FORMATS = ("auto", "movielens", "csv", "tsv")  # "blank" too: NCF files
# Header names, compared in lower case without "_", "-" and blanks. Where a
# header holds several names of one kind, the earlier name here wins.
USER_NAMES = ("user", "userid", "uid", "customer", "customerid", "reviewer",
              "reviewerid", "visitor", "visitorid", "member", "memberid",
              "account", "accountid")
ITEM_NAMES = ("item", "itemid", "iid", "movie", "movieid", "product",
              "productid", "asin", "article", "articleid", "track", "trackid",
              "song", "songid", "book", "bookid", "isbn", "business",
              "businessid")
TIME_NAMES = ("timestamp", "time", "ts", "unixtime", "unixreviewtime",
              "eventtime", "datetime", "date")
RATING_NAMES = ("rating", "ratings", "score", "stars", "overall")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# A tab or newline breaks the maps; a byte-order mark inside the file (two
# logs joined by cat) would make "\ufeff1" a user of its own.
_CONTROL = re.compile("[\x00-\x1f\x7f\ufeff]")
_MAX_TIME = 2.0**63  # timestamps are written as int64


class Log(NamedTuple):
  """A parsed log; `user_ids[u]` is the text of dense user u, and so on."""
  users: np.ndarray  # int64 [N], 0.. in order of first appearance
  items: np.ndarray  # int64 [N]
  times: np.ndarray | None  # int64, or float64 if any is fractional; or None
  user_ids: list  # str, one per dense user
  item_ids: list  # str, one per dense item


def _quote(token) -> str:
  """repr of a token, cut to 40 characters."""
  return repr(token) if len(token) <= 40 else repr(token[:40]) + "..."


def _lines(path) -> list:
  """Returns the file's lines: UTF-8, BOM dropped, CR LF or CR ended."""
  raw = data.read_bytes(path)  # refuses what is not a regular file
  try:
    text = raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte "
                    f"{e.start})") from None
  return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _fields(path, lines, fmt) -> list:
  """Splits each line into fields, blanks around them kept; row k is line
  k + 1."""
  if fmt == "movielens":
    return [line.split("::") for line in lines]
  if fmt == "blank" or fmt == "tsv" and "\t" not in lines[0]:
    return [line.split() for line in lines]
  if fmt == "tsv":  # an empty field between two tabs is kept, and refused
    return [line.rstrip().split("\t") for line in lines]
  reader = csv.reader(lines)
  try:
    rows = list(reader)
  except csv.Error as e:
    raise DataError(f"{path}:{reader.line_num}: {e}") from None
  if reader.line_num != len(rows):  # a quoted field spans lines: find it
    reader = csv.reader(lines)
    row = next(k for k, _ in enumerate(reader) if reader.line_num != k + 1)
    raise DataError(f"{path}:{row + 1}: a quoted field runs past the end of "
                    "the line")
  return rows


def _strip(column) -> list:
  return list(map(str.strip, column))


def _normalize(name) -> str:
  return re.sub(r"[\s_-]", "", name.lower())


def _is_header(rows) -> bool:
  """A first line naming a user or item column, or holding no number where
  most of the next 100 lines hold one in some column, is a header."""
  first = [f.strip() for f in rows[0]]
  if any(_NUMBER.fullmatch(f) for f in first):
    return False
  if {_normalize(f) for f in first} & set(USER_NAMES + ITEM_NAMES):
    return True
  sample = [row for row in rows[1:101] if len(row) == len(first)]
  return any(2 * sum(bool(_NUMBER.fullmatch(row[c].strip())) for row in sample)
             > len(sample) for c in range(len(first)))


def _header_columns(path, header):
  """Returns the user, item, rating and time columns a header names."""
  header = [f.strip() for f in header]
  names = [_normalize(f) for f in header]
  found = [next((names.index(n) for n in known if n in names), None)
           for known in (USER_NAMES, ITEM_NAMES, RATING_NAMES, TIME_NAMES)]
  for kind, col, known in (("user", found[0], USER_NAMES),
                           ("item", found[1], ITEM_NAMES)):
    if col is None:
      raise DataError(
          f"{path}:1: header {','.join(header)!r} names no {kind} column "
          f"(known: {', '.join(known)}; case, _ and - are ignored); name the "
          f"columns, or start with a data line")
  return found


def _ids(path, column, kind, first_line):
  """Numbers ids 0.. in order of first appearance; returns them and the
  distinct ids."""
  index = {}
  codes = np.fromiter((index.setdefault(t, len(index)) for t in column),
                      np.int64, len(column))
  bad = next((t for t in index if not t or _CONTROL.search(t)), None)
  if bad is not None:
    row = column.index(bad)
    problem = ("is empty" if not bad else
               f"{_quote(bad)} holds a control character (tab, NUL, "
               "byte-order mark, ...)")
    raise DataError(f"{path}:{row + first_line}: {kind} id {problem}")
  return codes, list(index)


def _numbers(path, tokens, kind, first_line) -> np.ndarray:
  """Parses finite numbers below 2**63 in size: int64 if all are integers
  (exact beyond 2**53), else float64."""
  try:
    return np.array([int(t) for t in tokens], np.int64)
  except (ValueError, OverflowError):
    pass
  try:
    values = np.array([float(t) for t in tokens])
  except ValueError:
    for row, token in enumerate(tokens):
      try:
        float(token)
      except ValueError:
        raise DataError(f"{path}:{row + first_line}: {kind} {_quote(token)} "
                        "is not a number") from None
  bad = np.flatnonzero(~(np.abs(values) < _MAX_TIME))  # NaN fails too
  if bad.size:
    token = tokens[bad[0]]
    problem = ("is not a finite number" if np.isnan(values[bad[0]])
               or "inf" in token.lower() else
               "is out of range (at most 2**63 in size)")
    raise DataError(f"{path}:{bad[0] + first_line}: {kind} {_quote(token)} "
                    f"{problem}")
  return values


def read_log(path, fmt="auto") -> Log:
  """Reads an interaction log.

  Args:
    path: a regular file. Headerless lines are `user item [rating]
      [timestamp]`; with a header, columns are found by name (USER_NAMES,
      ITEM_NAMES, TIME_NAMES, RATING_NAMES), others are ignored.
    fmt: "movielens" (`::`), "csv" (the csv module: quotes, empty fields),
      "tsv" (tabs where the first line has one, else runs of blanks),
      "blank" (runs of whitespace, as NCF files) or "auto" (`::` in the first
      line: movielens, else `,`: csv, else tsv).

  Ratings, when present, must be finite numbers; they are not used otherwise
  (the NCF protocol binarizes). Timestamps must be finite numbers below 2**63
  in size.
  """
  if fmt not in FORMATS + ("blank",):
    raise DataError(f"{path}: unknown fmt {fmt!r}, expected one of "
                    f"{', '.join(FORMATS)}")
  # Millions of small lists, none in a cycle: the cyclic GC would rescan
  # them again and again (4x slower on a 1M-line log).
  enabled = gc.isenabled()
  gc.disable()
  try:
    return _parse(path, _lines(path), fmt)
  finally:
    if enabled:
      gc.enable()


def _parse(path, lines, fmt) -> Log:
  """read_log on the file's lines."""
  if fmt == "auto":
    first = lines[0]
    fmt = "movielens" if "::" in first else "csv" if "," in first else "tsv"
  rows = _fields(path, lines, fmt)
  first_line = 1
  if _is_header(rows):
    header, rows, first_line = rows[0], rows[1:], 2
    cols = _header_columns(path, header)
    if not rows:
      raise DataError(f"{path}: no interactions after the header")
    ignored = [f.strip() for c, f in enumerate(header) if c not in cols]
    if ignored:
      logging.warning("%s:1: columns %s ignored (time columns: %s)", path,
                      ignored, ", ".join(TIME_NAMES))
  elif 2 <= len(rows[0]) <= 4:  # user item [rating] [timestamp]
    header, ncols = None, len(rows[0])
    cols = [0, 1, 2 if ncols >= 3 else None, 3 if ncols == 4 else None]
  else:
    raise DataError(f"{path}:1: expected 2-4 columns (user item [rating] "
                    f"[timestamp]) or a header, found {len(rows[0])}")
  ncols = len(header or rows[0])
  widths = list(map(len, rows))
  if min(widths) != ncols or max(widths) != ncols:
    k = next(k for k, w in enumerate(widths) if w != ncols)
    raise DataError(f"{path}:{k + first_line}: expected {ncols} columns, "
                    f"found {widths[k]}")
  if header is not None and header in rows:
    raise DataError(f"{path}:{rows.index(header) + first_line}: the header "
                    "again (files joined?)")
  table = list(zip(*rows))  # one tuple per column
  users, user_ids = _ids(path, _strip(table[cols[0]]), "user", first_line)
  items, item_ids = _ids(path, _strip(table[cols[1]]), "item", first_line)
  if cols[2] is not None:
    _numbers(path, _strip(table[cols[2]]), "rating", first_line)
  times = None if cols[3] is None else _numbers(
      path, _strip(table[cols[3]]), "timestamp", first_line)
  return Log(users, items, times, user_ids, item_ids)


def first_appearance(keys) -> np.ndarray:
  """Maps keys to 0.. in order of first appearance."""
  _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
  rank = np.empty(len(first), np.int64)
  rank[np.argsort(first)] = np.arange(len(first))
  return rank[inverse.ravel()]


def positives(log_path, min_interactions=1, fmt="auto"):
  """The lines of a log's kept users (>= max(2, min_interactions) distinct
  items), numbered 0.. in order of first appearance: (users, items, times
  or None without timestamps, [user id map, item id map])."""
  if (isinstance(min_interactions, bool) or
      not isinstance(min_interactions, (int, np.integer)) or
      min_interactions < 1):
    raise DataError(f"min_interactions={min_interactions!r}: must be an "
                    "integer >= 1 (users keep >= max(2, it) distinct items)")
  log = read_log(log_path, fmt)
  users, items = log.users, log.items
  width = items.max() + 1
  counts = np.bincount(np.unique(users * width + items) // width)
  threshold = max(2, min_interactions)
  logging.info("%s: dropped %d of %d users with < %d items",
               log_path, (counts < threshold).sum(), len(counts), threshold)
  keep = counts[users] >= threshold
  if not keep.any():
    raise DataError(
        f"{log_path}: no user has >= {threshold} distinct items")
  users, items = first_appearance(users[keep]), first_appearance(items[keep])
  id_maps = []
  for new, old, ids in ((users, log.users[keep], log.user_ids),
                        (items, log.items[keep], log.item_ids)):
    _, first = np.unique(new, return_index=True)
    id_maps.append([ids[k] for k in old[first].tolist()])
  times = None if log.times is None else log.times[keep]
  return users, items, times, id_maps
