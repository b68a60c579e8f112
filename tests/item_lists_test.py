"""Tests of the item-list format (item_lists.py) and its split builder."""

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from dot_vs_learned import item_lists
from dot_vs_learned.data_checks import DataError

REPO = pathlib.Path(__file__).resolve().parents[1]


def _splits_cli(*flags):
  """Runs `python -m dot_vs_learned.splits FLAGS`; returns its stdout."""
  out = subprocess.run([sys.executable, "-m", "dot_vs_learned.splits",
                        *flags], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  return out.stdout


def _write(folder, train, test):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "train.txt").write_text(train)
  (folder / "test.txt").write_text(test)
  return folder


def test_loads_pairs_of_several_test_items_per_user(tmp_path):
  folder = _write(tmp_path / "gowalla", "0 1 2 3\n1 0\n3 4 2\n",
                  "0 4 0\n1 2 3 4\n3 1\n")
  d = item_lists.load_lists(folder)
  assert (d.name, d.num_users, d.num_items) == ("gowalla", 4, 5)
  assert list(zip(d.train_users, d.train_items)) == [
      (0, 1), (0, 2), (0, 3), (1, 0), (3, 4), (3, 2)]
  assert list(zip(d.test_users, d.test_items)) == [
      (0, 4), (0, 0), (1, 2), (1, 3), (1, 4), (3, 1)]
  assert d.train_users.dtype == np.int32


@pytest.mark.parametrize("train, test, where, message", [
    ("0 1 x\n", "0 2\n", "train.txt:1", "item 'x' is not a valid id"),
    ("0 1\n-1 2\n", "0 2\n", "train.txt:2", "user '-1' is not a valid id"),
    ("0 1\n\n1 2\n", "0 2\n", "train.txt:2", "empty line"),
    ("0 1\n0 2\n", "0 3\n", "train.txt:2", "user 0 already has line 1"),
    ("0 1 2 1\n", "0 3\n", "train.txt:1", "item 1 appears twice for user 0"),
    ("0 1 2\n1 3\n", "1 4\n0 5 2\n", "test.txt:2",
     "1 test pairs are also training pairs (first: user 0, item 2, "
     "train.txt line 1)"),
    ("0 1 2\n", "0 99999\n", "test.txt:1",
     "item 99999 is far beyond the 3 distinct item ids"),
    ("0 1\n", "0 2 99999999999\n", "test.txt:1",
     "item '99999999999' is not a valid id"),
    ("0 1_0\n", "0 2\n", "train.txt:1", "item '1_0' is not a valid id"),
    # int() refuses over 4,300 digits with its own message.
    ("0 " + "9" * 5000 + "\n", "0 2\n", "train.txt:1",
     f"item '{'9' * 40}' is not a valid id"),
    ("0 1\n", "0 2\n1" + "0" * 11 + " 3\n", "test.txt:2",
     "user '100000000000' is not a valid id"),
    ("0 +5\n", "0 2\n", "train.txt:1", "item '+5' is not a valid id"),
    ("0 1\n29858 2\n", "0 3\n", "train.txt:2",
     "user 29858 is far beyond the 2 distinct user ids"),
])
def test_malformed_files_name_the_file_and_line(tmp_path, train, test, where,
                                                message):
  folder = _write(tmp_path / "d", train, test)
  with pytest.raises(DataError) as e:
    item_lists.load_lists(folder)
  assert str(e.value).startswith(f"{folder}/{where}: ")
  assert message in str(e.value)


def test_missing_files_are_named(tmp_path):
  (tmp_path / "d").mkdir()
  (tmp_path / "d" / "train.txt").write_text("0 1\n")
  with pytest.raises(DataError, match="missing test.txt; an item-list"):
    item_lists.load_lists(tmp_path / "d")
  with pytest.raises(DataError, match=re.escape(
      f"{tmp_path / 'd' / 'train.txt'}: not a folder")):
    item_lists.load_lists(tmp_path / "d" / "train.txt")


def test_write_then_load_round_trips(tmp_path):
  d = item_lists.load_lists(_write(tmp_path / "a", "2 5 1\n0 3\n",
                                   "0 1 5\n2 0\n"))
  item_lists.write_lists(d, tmp_path / "b")
  # One line per user with items, in user order, items sorted.
  assert (tmp_path / "b" / "train.txt").read_text() == "0 3\n2 1 5\n"
  assert (tmp_path / "b" / "test.txt").read_text() == "0 1 5\n2 0\n"
  again = item_lists.load_lists(tmp_path / "b", "a")
  assert (again.name, again.num_users, again.num_items) == ("a", 3, 6)
  for kind in ("train", "test"):
    def pairs(x, kind=kind):
      return sorted(zip(getattr(x, f"{kind}_users").tolist(),
                        getattr(x, f"{kind}_items").tolist()))
    assert pairs(again) == pairs(d)


def test_holdout_fraction_per_user():
  counts = np.array([1, 2, 5, 10, 11])
  users = np.repeat(np.arange(5), counts)
  items = np.concatenate([np.arange(c) for c in counts])
  train, test = item_lists.holdout_fraction(users, items, 5, 0.2, seed=3)
  assert np.all(train ^ test)
  # round(0.2 n), at least 1 and at most n - 1: n = 1 keeps its pair.
  np.testing.assert_array_equal(np.bincount(users[test], minlength=5),
                                [0, 1, 1, 2, 2])
  same = item_lists.holdout_fraction(users, items, 5, 0.2, seed=3)[1]
  other = item_lists.holdout_fraction(users, items, 5, 0.2, seed=4)[1]
  assert np.array_equal(test, same) and not np.array_equal(test, other)
  with pytest.raises(ValueError, match="must be in"):
    item_lists.holdout_fraction(users, items, 5, 1.0, seed=0)


def test_split_builder_writes_item_lists_from_a_log(tmp_path):
  rng = np.random.default_rng(0)
  lines = ["user,item,timestamp"] + [
      f"u{u},i{i},{t}" for t, (u, i) in enumerate(
          zip(rng.integers(0, 40, 1500), rng.integers(0, 60, 1500)))]
  (tmp_path / "log.csv").write_text("\n".join(lines) + "\n")
  stdout = _splits_cli(f"--log={tmp_path / 'log.csv'}",
                       f"--out_dir={tmp_path / 'out'}", "--name=mine",
                       "--format=lists", "--test_fraction=0.25")
  d = item_lists.load_lists(tmp_path / "out")
  assert stdout.startswith(f"{tmp_path / 'out'}/{{train,test}}.txt: "
                               f"{d.num_users} users, {d.num_items} items")
  pairs = {tuple(line.split(",")[:2]) for line in lines[1:]}
  users = (tmp_path / "out" / "mine.user_map.tsv").read_text().split("\n")
  items = (tmp_path / "out" / "mine.item_map.tsv").read_text().split("\n")
  user_of = [line.split("\t")[0] for line in users if line]
  item_of = [line.split("\t")[0] for line in items if line]
  got = {(user_of[u], item_of[i]) for u, i in zip(
      np.concatenate([d.train_users, d.test_users]),
      np.concatenate([d.train_items, d.test_items]))}
  assert got == pairs  # every distinct pair once, in train or test
  per_user = np.bincount(d.train_users, minlength=d.num_users) + np.bincount(
      d.test_users, minlength=d.num_users)
  np.testing.assert_array_equal(
      np.bincount(d.test_users, minlength=d.num_users),
      np.clip(np.rint(0.25 * per_user), 1, per_user - 1))


def test_tuning_split_holds_out_training_items_only(tmp_path):
  rng = np.random.default_rng(1)
  train = "".join(f"{u} " + " ".join(map(str, rng.choice(50, 5 + u % 7,
                                                         replace=False)))
                  + "\n" for u in range(30))
  test = "".join(f"{u} {50 + u % 10}\n" for u in range(30))
  full = item_lists.load_lists(_write(tmp_path / "full", train, test))
  _splits_cli(f"--holdout_of={tmp_path / 'full'}",
              f"--out_dir={tmp_path / 'tune'}", "--name=toy",
              "--format=lists", "--seed=2")
  tune = item_lists.load_lists(tmp_path / "tune")
  pairs = lambda users, items: set(zip(users.tolist(), items.tolist()))
  held, kept = (pairs(tune.test_users, tune.test_items),
                pairs(tune.train_users, tune.train_items))
  # Every tuning pair is a training pair of the full split, once; nothing
  # of test.txt (items 50..59) is used.
  assert held | kept == pairs(full.train_users, full.train_items)
  assert not held & kept and max(tune.test_items) < 50
  counts = np.bincount(full.train_users, minlength=30)
  np.testing.assert_array_equal(np.bincount(tune.test_users, minlength=30),
                                np.clip(np.rint(0.2 * counts), 1, counts - 1))
  again = item_lists.holdout_split(tmp_path / "full", tmp_path / "again",
                                   seed=2)
  assert pairs(again.test_users, again.test_items) == held
  # Into the dataset's own folder, or a link to it: refused before anything
  # is written.
  (tmp_path / "link").symlink_to(tmp_path / "full")
  files = lambda: sorted((p.name, p.read_bytes())
                         for p in (tmp_path / "full").iterdir())
  before = files()
  for out in (tmp_path / "full" / ".", tmp_path / "link"):
    with pytest.raises(DataError, match=re.escape(
        f"out_dir={out}: train.txt would overwrite the input "
        f"{tmp_path / 'full' / 'train.txt'}")):
      item_lists.holdout_split(tmp_path / "full", out)
  assert files() == before


def test_users_without_training_or_test_items_load_and_are_logged(tmp_path,
                                                                  caplog):
  # User 0 alone on its train line; user 2 is missing from test.txt.
  folder = _write(tmp_path / "d", "0\n1 1\n2 0 1\n", "0 3\n1 2 3\n")
  with caplog.at_level("WARNING"):
    d = item_lists.load_lists(folder)
  assert (d.num_users, d.num_items, len(d.train_users)) == (3, 4, 3)
  for line in ("train.txt: 1 lines name a user and no items (first: line 1)",
               "test.txt: 1 test users have no training items (first: user "
               "0)", "test.txt: 1 training users have no test items, so are "
               "not evaluated (first: user 2)"):
    assert f"{folder}/{line}" in caplog.text


def test_no_training_pairs_refused_before_anything_is_written(tmp_path):
  # Every line a user alone: JAX failed in a gather after the workdir was
  # written; the loader refuses it, naming train.txt.
  folder = _write(tmp_path / "d", "0\n1\n", "0 3\n1 2 3\n")
  message = re.escape(f"{folder}/train.txt: no training pairs (no line has "
                      "an item)")
  with pytest.raises(DataError, match=message):
    item_lists.load_lists(folder)
  with pytest.raises(DataError, match=message):
    item_lists.holdout_split(folder, tmp_path / "out")
  assert not (tmp_path / "out").exists()
  _write(folder, "0 1\n", "0\n1\n")
  with pytest.raises(DataError, match=re.escape(
      f"{folder}/test.txt: no test pairs")):
    item_lists.load_lists(folder)


def test_a_tuning_split_with_nothing_to_hold_out_is_refused(tmp_path):
  # Each user has one training item, which stays in training: the tuning
  # test set would be empty, found once written before.
  folder = _write(tmp_path / "d", "0 1\n1 2\n", "0 3\n1 4\n")
  with pytest.raises(DataError, match=re.escape(
      f"{folder}/train.txt: no user has 2 or more training items")):
    item_lists.holdout_split(folder, tmp_path / "out")
  assert not (tmp_path / "out").exists()
