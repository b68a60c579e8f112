"""NCF-format datasets: loaders, checked downloads, split builders, defaults.

The NCF protocol (He et al. 2017, Sec. 4.1; Rendle et al. 2020, Sec. 5) holds
out each user's latest interaction and ranks it against sampled negatives. A
dataset is three files: `{name}.train.rating`, `{name}.test.rating` and
`{name}.test.negative`.
"""

import hashlib
import http.client
import os
import pathlib
import re
import shutil
import urllib.request
import warnings
from typing import NamedTuple

from absl import logging
import numpy as np

from dot_vs_learned import results

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/hexiangnan/"
    "neural_collaborative_filtering/4aab159e81c44b062c091bdaed0ab54ac632371f/"
    "Data")
SUFFIXES = ("train.rating", "test.rating", "test.negative")
# Pins of the files at the commit above. `git_blob` is what `git hash-object`
# prints: sha1 of b"blob <size>\0" + content.
CHECKSUMS = {
    "ml-1m": {
        "train.rating": {
            "git_blob": "31ba384fd58dac8fbd09d2dfc6616431f3563ab5"},
        "test.rating": {
            "git_blob": "1b79e03c96710c3b0c35deb19155ef74f7965a02",
            "sha256": "231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5"},
        "test.negative": {
            "git_blob": "c82844fb99d021f94751a6f915a230a1e8b8da92",
            "sha256": "127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4"},
    },
    "pinterest-20": {
        "train.rating": {
            "git_blob": "99813f8ed7486c36fa0f405e3f400db5d6fed0be"},
        "test.rating": {
            "git_blob": "87fdbd13bced61c51f2842e2a667e83b9b0084e3"},
        "test.negative": {
            "git_blob": "b752ccdc14df423b9484771440ff4a73e4a4a304"},
    },
}

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
            if name in CHECKSUMS else "see the NCF repository's Data/")
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
      fd, temp = results.make_temp(out, f".{name}.{suffix}.")
      temps.append(temp)
      with os.fdopen(fd, "w") as f:
        f.write(text)
    for suffix, temp in zip(SUFFIXES, temps):
      os.replace(temp, out / f"{name}.{suffix}")
  finally:
    for temp in temps:
      if os.path.exists(temp):
        os.remove(temp)


# --------------------------------------------------------------- downloads ---


def _mismatch(path, pins) -> str:
  """Returns '' if the file matches every pin, else what differs."""
  blob = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
  sha = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      blob.update(chunk)
      sha.update(chunk)
  actual = {"git_blob": blob.hexdigest(), "sha256": sha.hexdigest()}
  return "; ".join(f"{kind} expected {want}, got {actual[kind]}"
                   for kind, want in pins.items() if actual[kind] != want)


def _fetch(url, target, pins) -> None:
  """Streams `url` to a temp file, verifies it, then renames it to `target`."""
  fd, temp = results.make_temp(target.parent, f".{target.name}.", ".part")
  try:
    with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url,
                                                          timeout=60) as r:
      shutil.copyfileobj(r, f, 1 << 20)
    problem = _mismatch(temp, pins)
    if problem:
      raise DataError(f"{target}: checksum mismatch for {url}: {problem}")
    os.replace(temp, target)
  finally:
    if os.path.exists(temp):  # an interrupted or corrupt download
      os.remove(temp)


def _offline_message(name, cache, base_url, missing, reason) -> str:
  """Explains how to provide dataset files that could not be downloaded."""
  urls = "".join(f"\n  {base_url.rstrip('/')}/{f}" for f in missing)
  return (f"{cache}: {reason}; missing {', '.join(missing)}. Fetch them "
          f"from:{urls}\ninto {cache}, or use --config.data.dir=DIR to point "
          f"at a directory holding existing NCF files {name}.*")


def download(name, cache_dir, base_url=DEFAULT_BASE_URL,
             checksums=None) -> pathlib.Path:
  """Fetches `{base_url}/{name}.*` into `cache_dir` (returned), checking pins.

  `checksums` (default CHECKSUMS) maps names to per-file pins. Cached files
  with the right checksums are kept, others fetched again; nothing unverified
  is ever left under a final file name.
  """
  table = CHECKSUMS if checksums is None else checksums
  if name not in table:
    raise DataError(f"{name}: no pinned checksums; downloadable: "
                    f"{', '.join(table)}")
  cache = pathlib.Path(cache_dir).expanduser()
  cache.mkdir(parents=True, exist_ok=True)
  pending = [s for s, pins in table[name].items()
             if not (cache / f"{name}.{s}").is_file()
             or _mismatch(cache / f"{name}.{s}", pins)]
  for k, suffix in enumerate(pending):
    url = f"{base_url.rstrip('/')}/{name}.{suffix}"
    try:
      _fetch(url, cache / f"{name}.{suffix}", table[name][suffix])
    except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
      files = [f"{name}.{s}" for s in pending[k:]]
      raise DataError(_offline_message(name, cache, base_url, files,
                                       f"cannot download ({e})")) from e
  return cache


# ------------------------------------------- NCF protocol, generated data ---


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
  data = NCFData(name, int(num_users), int(num_items),
                 u[~is_test].astype(np.int32), i[~is_test].astype(np.int32),
                 test_items, negatives)
  return data, t[~is_test], t[is_test]


def generate_default(num_users=2000, num_items=1000, seed=0, rank=8,
                     affinity=3.0, zipf=1.0, num_negatives=99) -> NCFData:
  """Generates the embedded default dataset: latent factors plus popularity.

  User u picks 20 to 150 items (long tailed, mean ~45) without replacement,
  with probabilities softmax(affinity * p_u . q_i + b_i), p, q ~ N(0, I /
  sqrt(rank)), b_i = -zipf * log(1 + popularity rank of i), by the Gumbel
  top-k trick. Its interactions come in random order; the latest is held out
  and negatives are sampled as in build_split.
  """
  if num_items < num_negatives + 2:
    raise DataError(f"generate_default: num_items={num_items} leaves no room "
                    f"for 2 positives and {num_negatives} negatives")
  rng = np.random.Generator(np.random.PCG64(seed))
  user_UxR = rng.normal(size=(num_users, rank)) / rank**0.25
  item_IxR = rng.normal(size=(num_items, rank)) / rank**0.25
  bias_I = -zipf * np.log1p(rng.permutation(num_items))
  logits_UxI = affinity * user_UxR @ item_IxR.T + bias_I
  counts_U = np.minimum(20 + rng.exponential(25, num_users).astype(np.int64),
                        min(150, num_items - num_negatives))
  gumbel_UxI = rng.gumbel(size=logits_UxI.shape)
  ranked_UxI = np.argsort(-(logits_UxI + gumbel_UxI), axis=1)
  items = ranked_UxI[np.arange(num_items) < counts_U[:, None]]
  users = np.repeat(np.arange(num_users), counts_U)
  times = rng.permutation(len(items)).astype(float)
  data, _, _ = ncf_split("generate_default", "default", users, items, times,
                      num_users, num_items, num_negatives, rng)
  return data


def load_dataset(data_config) -> NCFData:
  """Returns the dataset a `config.data` ConfigDict names.

  "default" is generated in memory; with `dir` set, `{dir}/{name}.*` NCF files
  are loaded and validated by content; "ml-1m" and "pinterest-20" otherwise
  come from `cache_dir` (else $DOT_VS_LEARNED_CACHE, else
  ~/.cache/dot_vs_learned), downloaded and checksummed if `download` is true.
  """
  name = data_config.get("name", "default")
  if name == "default":
    return generate_default(num_users=data_config.get("num_users", 2000),
                            num_items=data_config.get("num_items", 1000),
                            seed=data_config.get("seed", 0))
  directory = data_config.get("dir", "")
  if directory:
    return load_ncf(pathlib.Path(directory).expanduser(), name)
  if name not in CHECKSUMS:
    raise DataError(
        f"data.name={name!r} is neither 'default' nor downloadable "
        f"({', '.join(CHECKSUMS)}); set --config.data.dir=DIR to a directory "
        f"holding {name}.{{{','.join(SUFFIXES)}}}")
  cache = pathlib.Path(data_config.get("cache_dir", "")
                       or os.environ.get("DOT_VS_LEARNED_CACHE")
                       or "~/.cache/dot_vs_learned").expanduser()
  if data_config.get("download", False):
    return load_ncf(download(name, cache), name)
  missing = [f"{name}.{s}" for s in SUFFIXES
             if not (cache / f"{name}.{s}").is_file()]
  if missing:
    raise DataError(_offline_message(
        name, cache, DEFAULT_BASE_URL, missing,
        "downloads are off (set --config.data.download=True to allow them)"))
  return load_ncf(cache, name)
