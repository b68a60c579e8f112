"""Tests of building NCF-protocol splits from raw interaction logs."""

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
  # Other final test items and negatives (same count): the same tuning split.
  (tmp_path / "toy.test.rating").write_text(
      "".join(f"{u}\t{59 - u}\t1\t0\n" for u in range(30)))
  (tmp_path / "toy.test.negative").write_text(
      "".join(f"({u},{59 - u})\t61\t62\t63\t64\t65\n" for u in range(30)))
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


def test_holdout_needs_two_training_interactions_per_user(tmp_path):
  _ncf_files(tmp_path, [(0, 3, 1), (0, 4, 2), (1, 5, 1)], 2)
  with pytest.raises(data.DataError, match="user 1 has 1 training"):
    splits.holdout_split(tmp_path, "toy", tmp_path / "out")
  assert not (tmp_path / "out").exists()
