"""Tests of building NCF-protocol splits from raw interaction logs."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from dot_vs_learned import data
from dot_vs_learned import splits

# pytest puts tests/ on sys.path (rootdir-relative, no package).
from data_test import _assert_same, _user_items  # pylint: disable=g-bad-import-order


# user 40 has one item and is dropped.
RATINGS_DAT = """20::7::5::100
10::5::3::50
20::8::4::300
10::6::1::60
20::9::2::300
40::5::5::10
10::7::4::40
20::7::3::200
30::9::1::5
30::5::2::6
30::9::4::7
"""


def _log_rows():
  """Returns RATINGS_DAT as (user, item, rating, timestamp) string tuples."""
  return [line.split("::") for line in RATINGS_DAT.split()]


def _check_ratings_split(d):
  """Checks the split of RATINGS_DAT, whichever format it came from."""
  # Users by first appearance: 20->0, 10->1, 30->2 (40 dropped: 1 item).
  # Items by first appearance among kept lines: 7->0, 5->1, 8->2, 6->3, 9->4.
  assert (d.num_users, d.num_items) == (3, 5)
  # Held out: 20 -> 9 (tie at 300, later line), 10 -> 6, 30 -> 9 (later copy).
  np.testing.assert_array_equal(d.test_items, [4, 3, 4])
  train = sorted(zip(d.train_users.tolist(), d.train_items.tolist()))
  assert train == [(0, 0), (0, 2), (1, 0), (1, 1), (2, 1)]
  assert d.test_negatives.shape == (3, 1)
  for u, items in enumerate(_user_items(d)):
    assert not items & set(d.test_negatives[u].tolist())


def test_build_split_movielens(tmp_path):
  log = tmp_path / "ratings.dat"
  log.write_text(RATINGS_DAT)
  d = splits.build_split(log, tmp_path / "out", "ml", num_negatives=1)
  _check_ratings_split(d)
  _assert_same(data.load_ncf(tmp_path / "out", "ml"), d)
  # Timestamps are written; the rating column is binarized to 1.
  test_lines = (tmp_path / "out/ml.test.rating").read_text().splitlines()
  assert test_lines[0] == "0\t4\t1\t300"
  # min_interactions=3 also drops user 30 (2 distinct items); 9 is renumbered.
  d = splits.build_split(log, tmp_path, "ml3", num_negatives=1, min_interactions=3)
  assert (d.num_users, d.num_items) == (2, 5)
  np.testing.assert_array_equal(d.test_items, [4, 3])


def test_build_split_csv_with_header_any_column_order(tmp_path):
  log = tmp_path / "ratings.csv"
  rows = [f"{t},{i},{u}" for u, i, _, t in _log_rows()]
  log.write_text("timestamp,item_id,userId\n" + "\r\n".join(rows))
  _check_ratings_split(splits.build_split(log, tmp_path, "csv", num_negatives=1))


def test_build_split_headerless_tsv_uses_file_order(tmp_path):
  log = tmp_path / "log.tsv"
  log.write_text("a\tx\nb\ty\nc\tz\nc\tw\na\ty\nb\tx\n")
  d = splits.build_split(log, tmp_path, "tsv", num_negatives=2, fmt="tsv")
  np.testing.assert_array_equal(d.test_items, [1, 0, 3])  # a: y, b: x, c: w
  negatives = [sorted(row) for row in d.test_negatives.tolist()]
  assert negatives == [[2, 3], [2, 3], [0, 1]]


def test_build_split_errors(tmp_path):
  log = tmp_path / "ratings.dat"
  log.write_text(RATINGS_DAT)
  with pytest.raises(data.DataError, match="fewer than num_negatives=3"):
    splits.build_split(log, tmp_path, "x", num_negatives=3)
  with pytest.raises(data.DataError, match="no user has >= 9"):
    splits.build_split(log, tmp_path, "x", min_interactions=9)
  log.write_text("user,item,timestamp\n1,2,3\n1,3,later\n")
  with pytest.raises(data.DataError, match=r"ratings.dat:3: timestamp 'later'"):
    splits.build_split(log, tmp_path, "x", num_negatives=1)
  log.write_text("1::2::3::4\n1::2::3\n")
  with pytest.raises(data.DataError, match="ratings.dat:2: expected 4 columns"):
    splits.build_split(log, tmp_path, "x", num_negatives=1)
  assert not list(tmp_path.glob("x.*"))


def test_build_split_deterministic_per_seed(tmp_path):
  rng = np.random.default_rng(0)
  lines = [f"{u}\t{i}\t1\t{t}" for t, (u, i) in enumerate(
      zip(rng.integers(0, 30, 600), rng.integers(0, 200, 600)))]
  (tmp_path / "log.tsv").write_text("\n".join(lines))

  def split(seed, out):
    return splits.build_split(tmp_path / "log.tsv", tmp_path / out, "s",
                            num_negatives=20, seed=seed)

  a, b, c = split(0, "a"), split(0, "b"), split(1, "c")
  _assert_same(a, b)
  np.testing.assert_array_equal(a.test_items, c.test_items)
  assert not np.array_equal(a.test_negatives, c.test_negatives)
  for u, items in enumerate(_user_items(a)):
    negatives = a.test_negatives[u].tolist()
    assert len(set(negatives)) == 20 and not items & set(negatives)




def _ncf_files(tmp_path, train_lines, num_users, num_negatives=2):
  """NCF files: the given train lines, test item 0 and negatives 1.. per user."""
  (tmp_path / "toy.train.rating").write_text(
      "".join(f"{u}\t{i}\t1\t{t}\n" for u, i, t in train_lines))
  (tmp_path / "toy.test.rating").write_text(
      "".join(f"{u}\t0\t1\t0\n" for u in range(num_users)))
  negatives = "\t".join(str(i) for i in range(1, num_negatives + 1))
  (tmp_path / "toy.test.negative").write_text(
      "".join(f"({u},0)\t{negatives}\n" for u in range(num_users)))


def test_holdout_takes_each_users_latest_training_interaction(tmp_path):
  # user 0: items 3 (t=5), 4 (t=9), 5 (t=9, later line: held out);
  # user 1: all at t=0, so the last line (item 6) is held out.
  _ncf_files(tmp_path, [(0, 3, 5), (0, 4, 9), (0, 5, 9), (1, 7, 0),
                        (1, 8, 0), (1, 6, 0)], 2)
  out = tmp_path / "tuning"
  tuning = splits.holdout_split(tmp_path, "toy", out, seed=3)
  assert tuning.name == "toy.holdout"
  assert sorted(p.name for p in out.iterdir()) == [
      "toy.holdout.test.negative", "toy.holdout.test.rating",
      "toy.holdout.train.rating"]
  np.testing.assert_array_equal(tuning.test_items, [5, 6])
  assert sorted(zip(tuning.train_users.tolist(),
                    tuning.train_items.tolist())) == [(0, 3), (0, 4), (1, 7),
                                                      (1, 8)]
  # As many negatives as the test file has, none a training item of the user.
  assert tuning.test_negatives.shape == (2, 2)
  for u, items in enumerate([{3, 4, 5}, {6, 7, 8}]):
    assert not items & set(tuning.test_negatives[u].tolist())
  again = splits.holdout_split(tmp_path, "toy", tmp_path / "again", seed=3)
  np.testing.assert_array_equal(again.test_negatives, tuning.test_negatives)


def test_holdout_uses_nothing_from_the_final_test_files(tmp_path):
  rng = np.random.default_rng(0)
  lines = [(u, i, int(rng.integers(100))) for u in range(30)
           for i in rng.choice(np.arange(1, 60), 8, replace=False)]
  _ncf_files(tmp_path, lines, 30, num_negatives=5)
  first = splits.holdout_split(tmp_path, "toy", tmp_path / "a", seed=1)
  # Other final test items (none a training pair) and negatives (same
  # count): the same tuning split.
  (tmp_path / "toy.test.rating").write_text(
      "".join(f"{u}\t{60 + u}\t1\t0\n" for u in range(30)))
  (tmp_path / "toy.test.negative").write_text(
      "".join(f"({u},{60 + u})\t91\t92\t93\t94\t95\n" for u in range(30)))
  second = splits.holdout_split(tmp_path, "toy", tmp_path / "b", seed=1)
  for a, b in zip(first[2:], second[2:]):
    np.testing.assert_array_equal(a, b)


def test_holdout_pick_random_is_uniform_when_timestamps_are_missing(
    tmp_path, caplog):
  # 200 users x items 1..5 in item order, every timestamp 0 (like a file
  # rebuilt without times): 'latest' holds out item 5 for every user and
  # warns; 'random' holds out each of the 5 items about equally often.
  _ncf_files(tmp_path, [(u, i, 0) for u in range(200) for i in range(1, 6)],
             200, num_negatives=3)
  (tmp_path / "toy.train.rating").write_text(
      (tmp_path / "toy.train.rating").read_text() + "".join(
          f"{u}\t{i}\t1\t0\n" for u in range(200) for i in range(6, 10)
          if i - 6 == u % 4))  # items 6..9 so that 3 negatives always exist
  with caplog.at_level("WARNING"):
    latest = splits.holdout_split(tmp_path, "toy", tmp_path / "a", seed=0)
  assert "every timestamp is 0" in caplog.text
  np.testing.assert_array_equal(latest.test_items, 6 + np.arange(200) % 4)
  picked = splits.holdout_split(tmp_path, "toy", tmp_path / "b", seed=0,
                                pick="random")
  counts = np.bincount(picked.test_items, minlength=10)
  # 200 users, 6 items each: about 33 per item; none near 0 or 200.
  assert counts[0] == 0 and all(15 <= c <= 55 for c in counts[1:6]), counts
  assert counts[6:].sum() == 200 - counts[1:6].sum()
  for u in range(200):  # the held-out item is gone from the user's train
    held = picked.test_items[u]
    assert held not in picked.train_items[picked.train_users == u]
  again = splits.holdout_split(tmp_path, "toy", tmp_path / "c", seed=0,
                               pick="random")
  np.testing.assert_array_equal(again.test_items, picked.test_items)
  other = splits.holdout_split(tmp_path, "toy", tmp_path / "d", seed=1,
                               pick="random")
  assert not np.array_equal(other.test_items, picked.test_items)
  with pytest.raises(ValueError, match="pick='newest'"):
    splits.holdout_split(tmp_path, "toy", tmp_path / "e", pick="newest")
  assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("lines", [
    [(0, 3, 1), (0, 4, 2), (1, 5, 1)],
    [(0, 3, 1), (0, 4, 2), (1, 5, 1), (1, 5, 2)],  # one item, twice
])
def test_holdout_needs_two_training_items_per_user(tmp_path, lines):
  _ncf_files(tmp_path, lines, 2)
  with pytest.raises(data.DataError, match="user 1 has 1 distinct training "
                     "items"):
    splits.holdout_split(tmp_path, "toy", tmp_path / "out")
  assert not (tmp_path / "out").exists()


# ------------------------------------------- id maps, shapes of real logs ---


def _map(path):
  """Reads an id map: original id -> number in the split."""
  return dict(line.split("\t") for line in path.read_text().splitlines())


def test_id_maps_beside_the_split_numeric_and_string_ids(tmp_path):
  log = tmp_path / "ratings.dat"
  log.write_text(RATINGS_DAT)
  splits.build_split(log, tmp_path / "a", "ml", num_negatives=1)
  # User 40 was dropped; numbers are by first appearance among kept lines.
  assert (tmp_path / "a/ml.user_map.tsv").read_text() == "20\t0\n10\t1\n30\t2\n"
  assert _map(tmp_path / "a/ml.item_map.tsv") == {
      "7": "0", "5": "1", "8": "2", "6": "3", "9": "4"}
  # String ids (the ratings as `u20,i7,...`) give the same split.
  rows = [f"u{u},i{i},{r},{t}" for u, i, r, t in _log_rows()]
  log = tmp_path / "strings.csv"
  log.write_text("\n".join(rows))
  d = splits.build_split(log, tmp_path / "b", "s", num_negatives=1)
  _check_ratings_split(d)
  assert _map(tmp_path / "b/s.user_map.tsv") == {"u20": "0", "u10": "1",
                                                 "u30": "2"}
  assert _map(tmp_path / "b/s.item_map.tsv")["i9"] == "4"


@pytest.mark.parametrize("text", [
    # The header: read as an interaction, its ts column as ratings.
    "customer_id,product_id,ts\n" + "\n".join(
        f"{u},{i},{t}" for u, i, _, t in _log_rows()),
    # A BOM before a headerless log dropped its first rating.
    "\ufeff" + RATINGS_DAT,
    "\ufeffuserId,movieId,rating,timestamp\r\n" + "\r\n".join(
        ",".join(row) for row in _log_rows()),
])
def test_common_log_shapes_give_the_reference_split(tmp_path, text):
  log = tmp_path / "log.csv"
  log.write_bytes(text.encode())
  _check_ratings_split(splits.build_split(log, tmp_path, "x", num_negatives=1))


def _prepare_out(tmp_path, kind):
  """Returns an out_dir of the given kind under tmp_path."""
  if kind == "file":
    (tmp_path / "taken").write_text("not a folder")
    return tmp_path / "taken"
  if kind == "under_file":
    (tmp_path / "taken").write_text("not a folder")
    return tmp_path / "taken/out"
  if kind == "target_is_dir":
    (tmp_path / "out/x.test.rating").mkdir(parents=True)
  return tmp_path / "out"


# (log text, build_split keywords, out_dir kind, expected message part).
REFUSED = [
    (RATINGS_DAT.replace("::100", "::nan"), {}, "new",
     "log.txt:1: timestamp 'nan' is not a finite number"),
    (RATINGS_DAT.replace("10::5::3::50", "10::5::3::inf"), {}, "new",
     "log.txt:2: timestamp 'inf' is not a finite number"),
    ("1,2,5,100\n1,,5,101\n", {}, "new", "log.txt:2: item id is empty"),
    ("1::2\n2::3\n3::2\n", {}, "new", "log.txt: no user has >= 2 distinct"),
    (RATINGS_DAT, {"seed": -1}, "new", "seed=-1: must be an integer >= 0"),
    (RATINGS_DAT, {"name": "a/b"}, "new", "name='a/b': must be a file name"),
    (RATINGS_DAT, {"num_negatives": 0}, "new", "num_negatives=0 must be >= 1"),
    (RATINGS_DAT, {"min_interactions": -3}, "new",
     "min_interactions=-3: must be an integer >= 1"),
    (RATINGS_DAT, {}, "file", "taken is not a directory"),
    (RATINGS_DAT, {}, "under_file", "taken is not a directory"),
    (RATINGS_DAT, {}, "target_is_dir",
     "x.test.rating exists and is not a regular file"),
]


@pytest.mark.parametrize("text, kwargs, out_kind, message", REFUSED)
def test_bad_input_refused_before_anything_is_written(tmp_path, text, kwargs,
                                                      out_kind, message):
  log = tmp_path / "log.txt"
  log.write_text(text)
  out = _prepare_out(tmp_path, out_kind)
  before = sorted(tmp_path.rglob("*"))
  with pytest.raises(data.DataError, match=re.escape(message)):
    splits.build_split(log, out, kwargs.pop("name", "x"), **dict(
        dict(num_negatives=1), **kwargs))
  assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_out_dir_refused(tmp_path):
  (tmp_path / "log.txt").write_text(RATINGS_DAT)
  (tmp_path / "ro").mkdir(mode=0o555)
  with pytest.raises(data.DataError, match="cannot write in .*ro"):
    splits.build_split(tmp_path / "log.txt", tmp_path / "ro/out", "x")


def test_empty_out_dir_refused_not_read_as_the_current_folder(
    tmp_path, monkeypatch):
  (tmp_path / "log.txt").write_text(RATINGS_DAT)
  monkeypatch.chdir(tmp_path)
  with pytest.raises(data.DataError, match="out_dir=: an empty path"):
    splits.build_split(tmp_path / "log.txt", "", "x")
  assert [p.name for p in tmp_path.iterdir()] == ["log.txt"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
def test_out_dir_in_proc_refused(tmp_path):
  (tmp_path / "log.txt").write_text(RATINGS_DAT)
  with pytest.raises(data.DataError, match="out_dir=/proc/x: cannot write"):
    splits.build_split(tmp_path / "log.txt", "/proc/x", "x")


def test_holdout_refuses_bad_files_before_writing(tmp_path):
  _ncf_files(tmp_path, [(0, 3, 5), (0, 4, "nan"), (1, 5, 1), (1, 6, 2)], 2)
  with pytest.raises(data.DataError, match=r"toy.train.rating:2: timestamp "
                     "'nan' is not a finite number"):
    splits.holdout_split(tmp_path, "toy", tmp_path / "out")
  _ncf_files(tmp_path, [(0, 3, 5), (0, "x", 1), (1, 5, 1), (1, 6, 2)], 2)
  with pytest.raises(data.DataError, match=r"toy.train.rating:2: item 'x'"):
    splits.holdout_split(tmp_path, "toy", tmp_path / "out")
  assert not (tmp_path / "out").exists()


def _snapshot(folder):
  """Every file under `folder` with its bytes, to see that none changed."""
  return sorted((str(p), p.read_bytes()) for p in folder.rglob("*")
                if p.is_file())


def test_holdout_into_its_own_files_is_refused(tmp_path):
  # out_name=name in the data's folder, or in a link to it, would replace
  # the three input files with the tuning split.
  (tmp_path / "d").mkdir()
  _ncf_files(tmp_path / "d", [(u, i, 0) for u in range(3) for i in (3, 4, 5)],
             3)
  (tmp_path / "link").symlink_to(tmp_path / "d")
  before = _snapshot(tmp_path)
  for out in (tmp_path / "d", tmp_path / "link"):
    with pytest.raises(data.DataError, match=re.escape(
        f"out_dir={out}: toy.train.rating would overwrite the input "
        f"{tmp_path / 'd' / 'toy.train.rating'}")):
      splits.holdout_split(tmp_path / "d", "toy", out, "toy", pick="random")
  assert _snapshot(tmp_path) == before


def test_holdout_of_files_without_timestamps(tmp_path):
  # 3-column rating files (user item rating): every timestamp is taken as 0.
  _ncf_files(tmp_path, [(u, i, 0) for u in range(3) for i in (3, 4, 5)], 3)
  for suffix in ("train.rating", "test.rating"):
    path = tmp_path / f"toy.{suffix}"
    path.write_text("".join(line.rsplit("\t", 1)[0] + "\n"
                            for line in path.read_text().splitlines()))
  tuning = splits.holdout_split(tmp_path, "toy", tmp_path / "out")
  np.testing.assert_array_equal(tuning.test_items, [5, 5, 5])  # file order
  assert (tmp_path / "out/toy.holdout.test.rating").read_text() == (
      "0\t5\t1\t0\n1\t5\t1\t0\n2\t5\t1\t0\n")


def _cli(tmp_path, *flags):
  """Runs the splits CLI; returns (exit status, stderr lines)."""
  done = subprocess.run(
      [sys.executable, "-m", "dot_vs_learned.splits", *flags,
       f"--out_dir={tmp_path / 'out'}", "--name=x"], capture_output=True,
      text=True, timeout=120, cwd=pathlib.Path(__file__).parents[1],
      check=False)
  return done.returncode, done.stderr.strip().splitlines()


def test_cli_errors_are_one_line_and_a_fifo_does_not_block(tmp_path):
  os.mkfifo(tmp_path / "fifo")
  status, lines = _cli(tmp_path, f"--log={tmp_path / 'fifo'}")
  assert (status, lines) == (1, [f"error: {tmp_path / 'fifo'}: a FIFO, not "
                                 "a regular file"])
  (tmp_path / "log.dat").write_text(RATINGS_DAT.replace("::300", "::NaN"))
  status, lines = _cli(tmp_path, f"--log={tmp_path / 'log.dat'}",
                       "--num_negatives=1")
  assert (status, lines) == (1, [f"error: {tmp_path / 'log.dat'}:3: "
                                 "timestamp 'NaN' is not a finite number"])
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, taken", [
    ([], "x.train.rating"),
    (["--format=lists"], "train.txt"),
])
def test_cli_refuses_to_overwrite_an_existing_split(tmp_path, flags, taken):
  (tmp_path / "log.dat").write_text(RATINGS_DAT)
  flags = [f"--log={tmp_path / 'log.dat'}", "--num_negatives=1", *flags]
  assert _cli(tmp_path, *flags)[0] == 0
  before = _snapshot(tmp_path / "out")
  assert _cli(tmp_path, *flags) == (1, [
      f"error: out_dir={tmp_path / 'out'}: {taken} exists; remove it or "
      "choose another --out_dir or name"])
  assert _snapshot(tmp_path / "out") == before


def test_cli_holdout_into_the_datasets_own_files_is_refused(tmp_path):
  # The audit's command: the data in out/x.*, tuning files named x there.
  (tmp_path / "out").mkdir()
  _ncf_files(tmp_path / "out", [(u, i, 0) for u in range(3)
                                for i in (3, 4, 5)], 3)
  for suffix in data.SUFFIXES:
    (tmp_path / f"out/toy.{suffix}").rename(tmp_path / f"out/x.{suffix}")
  before = _snapshot(tmp_path)
  assert _cli(tmp_path, f"--holdout_of={tmp_path / 'out'}", "--out_name=x",
              "--pick=random") == (1, [
                  f"error: out_dir={tmp_path / 'out'}: x.train.rating "
                  "exists; remove it or choose another --out_dir or name"])
  assert _snapshot(tmp_path) == before
