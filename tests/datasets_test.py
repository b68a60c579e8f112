"""Tests of datasets.py: the generated default, downloads, load_dataset."""

import functools
import hashlib
import http.server
import os
import threading

import ml_collections
import numpy as np
import pytest

from dot_vs_learned import data
from dot_vs_learned import datasets
from data_test import NEGATIVE
from data_test import TEST
from data_test import _assert_same
from data_test import _user_items
from data_test import _write


def test_downloadable_names_are_the_pinned_ones():
  assert set(data.DOWNLOADABLE) == set(datasets.CHECKSUMS)
  for pins in datasets.CHECKSUMS.values():
    assert set(pins) == set(data.SUFFIXES)


# --------------------------------------------------------- generate_default ---


def test_generate_default():
  d = datasets.generate_default()
  assert (d.name, d.num_users, d.num_items) == ("default", 2000, 1000)
  assert d.test_items.shape == (2000,) and d.test_negatives.shape == (2000, 99)
  _assert_same(d, datasets.generate_default())
  other = datasets.generate_default(seed=1)
  assert not np.array_equal(d.test_negatives, other.test_negatives)
  items = _user_items(d)
  counts = np.bincount(d.train_users, minlength=2000)
  # 20 to 150 interactions, one of them held out.
  assert counts.min() >= 19 and counts.max() <= 149
  for u in range(d.num_users):
    negatives = set(d.test_negatives[u].tolist())
    assert len(negatives) == 99 and not items[u] & negatives
  popularity = np.sort(np.bincount(d.train_items, minlength=1000))[::-1]
  assert popularity[:100].sum() > 0.3 * popularity.sum()


# ---------------------------------------------------------------- downloads ---


def _git_blob(content):
  """Returns the id `git hash-object` gives `content`."""
  return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@pytest.fixture
def source(tmp_path):
  """Returns a mirror directory of tiny NCF files and their pin table."""
  _write(tmp_path / "mirror", name="tiny")
  pins = {}
  for suffix in data.SUFFIXES:
    content = (tmp_path / "mirror" / f"tiny.{suffix}").read_bytes()
    pins[suffix] = {"git_blob": _git_blob(content),
                    "sha256": hashlib.sha256(content).hexdigest()}
  return tmp_path / "mirror", {"tiny": pins}


def test_download_file_url_then_cached(tmp_path, source):
  mirror, pins = source
  cache = datasets.download("tiny", tmp_path / "cache", mirror.as_uri(), pins)
  assert cache == tmp_path / "cache"
  assert sorted(os.listdir(cache)) == sorted(f"tiny.{s}" for s in data.SUFFIXES)
  _assert_same(data.load_ncf(cache, "tiny"), data.load_ncf(mirror, "tiny"))
  # Cached and verified: an unreachable mirror is never contacted.
  datasets.download("tiny", cache, (tmp_path / "gone").as_uri(), pins)
  # A corrupted cached file is fetched again.
  (cache / "tiny.test.rating").write_text("garbage")
  datasets.download("tiny", cache, mirror.as_uri(), pins)
  assert (cache / "tiny.test.rating").read_text() == TEST


def test_download_checksum_mismatch_leaves_nothing(tmp_path, source):
  mirror, pins = source
  (mirror / "tiny.test.negative").write_text(NEGATIVE.replace("3", "4"))
  with pytest.raises(data.DataError) as error:
    datasets.download("tiny", tmp_path / "cache", mirror.as_uri(), pins)
  expected = pins["tiny"]["test.negative"]["git_blob"]
  actual = _git_blob((mirror / "tiny.test.negative").read_bytes())
  message = str(error.value)
  for part in ("tiny.test.negative", expected, actual):
    assert part in message
  assert not (tmp_path / "cache/tiny.test.negative").exists()
  assert not [f for f in os.listdir(tmp_path / "cache") if f.startswith(".")]


def test_download_offline_message(tmp_path, source):
  _, pins = source
  base = (tmp_path / "nowhere").as_uri()
  with pytest.raises(data.DataError) as error:
    datasets.download("tiny", tmp_path / "cache", base, pins)
  message = str(error.value)
  for suffix in data.SUFFIXES:
    assert f"{base}/tiny.{suffix}" in message
  assert f"into {tmp_path / 'cache'}" in message
  assert "--config.data.dir=DIR" in message
  assert os.listdir(tmp_path / "cache") == []
  with pytest.raises(data.DataError, match="no pinned checksums"):
    datasets.download("unknown", tmp_path / "cache", base, pins)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

  def log_message(self, *args):
    pass


def test_download_over_http(tmp_path, source):
  mirror, pins = source
  handler = functools.partial(_QuietHandler, directory=str(mirror))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    base = f"http://127.0.0.1:{server.server_port}"
    cache = datasets.download("tiny", tmp_path / "cache", base, pins)
    _assert_same(data.load_ncf(cache, "tiny"), data.load_ncf(mirror, "tiny"))
    with pytest.raises(data.DataError, match="HTTP Error 404"):
      datasets.download("tiny", tmp_path / "cache2", base + "/missing", pins)
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# ------------------------------------------------------------- load_dataset ---


def _config(**fields):
  """Returns a data config with the given fields over the defaults."""
  defaults = dict(name="default", dir="", cache_dir="", download=False, seed=0,
                  num_users=100, num_items=300)
  return ml_collections.ConfigDict(dict(defaults, **fields))


def test_load_dataset(tmp_path, source, monkeypatch):
  _assert_same(datasets.load_dataset(_config(seed=2)),
               datasets.generate_default(num_users=100, num_items=300, seed=2))
  mirror, pins = source
  from_dir = datasets.load_dataset(_config(name="tiny", dir=str(mirror)))
  _assert_same(from_dir, data.load_ncf(mirror, "tiny"))
  with pytest.raises(data.DataError, match="data.name='tiny'"):
    datasets.load_dataset(_config(name="tiny"))
  # Known names come from the cache ($DOT_VS_LEARNED_CACHE unless cache_dir).
  monkeypatch.setenv("DOT_VS_LEARNED_CACHE", str(tmp_path / "env"))
  with pytest.raises(data.DataError, match="downloads are off") as error:
    datasets.load_dataset(_config(name="ml-1m"))
  assert str(tmp_path / "env") in str(error.value)
  assert datasets.DEFAULT_BASE_URL + "/ml-1m.test.negative" in str(error.value)
  monkeypatch.setitem(datasets.CHECKSUMS, "tiny", pins["tiny"])
  datasets.download("tiny", tmp_path / "cache", mirror.as_uri())
  cached = datasets.load_dataset(_config(  # verified in the cache, not refetched
      name="tiny", cache_dir=str(tmp_path / "cache"), download=True))
  _assert_same(cached, from_dir)
