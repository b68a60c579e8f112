"""Where a dataset comes from: generated, downloaded with pinned checksums, or
a folder of NCF files (data.py reads them) or of item lists (data.format =
"lists": item_lists.py). The NCF split itself: splits.py.
"""

import hashlib
import http.client
import os
import pathlib
import shutil
import urllib.request

import numpy as np

from dot_vs_learned import atomic
from dot_vs_learned import data
from dot_vs_learned import item_lists
from dot_vs_learned import splits
from dot_vs_learned.data import DataError
from dot_vs_learned.data import NCFData

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/hexiangnan/"
    "neural_collaborative_filtering/4aab159e81c44b062c091bdaed0ab54ac632371f/"
    "Data")
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
  fd, temp = atomic.make_temp(target.parent, f".{target.name}.", ".part")
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


# ---------------------------------------------------------- generated data ---


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
  split, _, _ = splits.ncf_split("generate_default", "default", users, items,
                                 times, num_users, num_items, num_negatives,
                                 rng)
  return split


def load_dataset(data_config) -> NCFData | item_lists.ListData:
  """Returns the dataset a `config.data` ConfigDict names.

  With format "lists", `{dir}/train.txt` and `test.txt` (item_lists.py),
  named `name`. Else "default" is generated in memory; with `dir` set,
  `{dir}/{name}.*` NCF files are loaded and validated by content; "ml-1m"
  and "pinterest-20" otherwise come from `cache_dir` (else
  $DOT_VS_LEARNED_CACHE, else ~/.cache/dot_vs_learned), downloaded and
  checksummed if `download` is true.
  """
  name = data_config.get("name", "default")
  if data_config.get("format", "ncf") == "lists":
    return item_lists.load_lists(_lists_dir(data_config), name)
  if name == "default":
    return generate_default(num_users=data_config.get("num_users", 2000),
                            num_items=data_config.get("num_items", 1000),
                            seed=data_config.get("seed", 0))
  directory = data_config.get("dir", "")
  if directory:
    return data.load_ncf(pathlib.Path(directory).expanduser(), name)
  if name not in CHECKSUMS:
    raise DataError(
        f"data.name={name!r} is neither 'default' nor downloadable "
        f"({', '.join(CHECKSUMS)}); set --config.data.dir=DIR to a directory "
        f"holding {name}.{{{','.join(data.SUFFIXES)}}}")
  cache = pathlib.Path(data_config.get("cache_dir", "")
                       or os.environ.get("DOT_VS_LEARNED_CACHE")
                       or "~/.cache/dot_vs_learned").expanduser()
  if data_config.get("download", False):
    return data.load_ncf(download(name, cache), name)
  missing = [f"{name}.{s}" for s in data.SUFFIXES
             if not (cache / f"{name}.{s}").is_file()]
  if missing:
    raise DataError(_offline_message(
        name, cache, DEFAULT_BASE_URL, missing,
        "downloads are off (set --config.data.download=True to allow them)"))
  return data.load_ncf(cache, name)


def input_paths(data_config) -> list[pathlib.Path]:
  """The files `load_dataset(data_config)` reads (none for generated data),
  for the workdir's fingerprint."""
  name = data_config.get("name", "default")
  if data_config.get("format", "ncf") == "lists":
    return [_lists_dir(data_config) / f for f in item_lists.FILES]
  if name == "default":
    return []
  directory = data_config.get("dir", "")
  folder = (pathlib.Path(directory).expanduser() if directory else
            pathlib.Path(data_config.get("cache_dir", "")
                         or os.environ.get("DOT_VS_LEARNED_CACHE")
                         or "~/.cache/dot_vs_learned").expanduser())
  return [folder / f"{name}.{suffix}" for suffix in data.SUFFIXES]


def _lists_dir(data_config) -> pathlib.Path:
  """The folder of an item-list dataset (data.dir; nothing downloads one)."""
  directory = data_config.get("dir", "")
  if not directory:
    raise DataError("data.format='lists' needs --config.data.dir=DIR, a "
                    f"folder with {' and '.join(item_lists.FILES)}")
  return pathlib.Path(directory).expanduser()
