"""Tests of data.py: the NCF file format, its loader and writer."""

import hashlib
import os
import pathlib
import re
import threading

import numpy as np
import pytest

from dot_vs_learned import data
from dot_vs_learned import datasets

# The NCF files ml-1m.{train.rating,test.rating,test.negative}: set
# DOT_VS_LEARNED_ML1M_DIR to their folder, or test_real_ml1m skips.
REAL_ML1M = pathlib.Path(os.environ.get("DOT_VS_LEARNED_ML1M_DIR", "/absent"))

# A hand-made dataset: 3 users, 2 negatives each. User 1's negatives include
# its own test item (4) and a training item (0): both must be kept.
TRAIN = "0\t0\t1\t10\n0\t1\t1\t11\n1\t0\t1\t12\n2\t2\t1\t13\n2\t3\t1\t14\n"
TEST = "0\t2\t5\t20\n1\t4\t3\t21\n2\t5\t4\t22\n"
NEGATIVE = "(0,2)\t3\t4\n(1,4)\t4\t0\n(2,5)\t0\t1\n"


def _write(directory, train=TRAIN, test=TEST, negative=NEGATIVE, name="t"):
  """Writes raw NCF file contents; returns the directory."""
  pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
  for suffix, text in zip(data.SUFFIXES, (train, test, negative)):
    (pathlib.Path(directory) / f"{name}.{suffix}").write_bytes(text.encode())
  return directory


def _assert_same(a, b):
  """Asserts two NCFData hold equal arrays and sizes (names may differ)."""
  assert (a.num_users, a.num_items) == (b.num_users, b.num_items)
  for x, y in zip(a[3:], b[3:]):
    assert x.dtype == y.dtype == np.int32
    np.testing.assert_array_equal(x, y)


def _user_items(d):
  """Returns each user's set of train and test items."""
  items = [set() for _ in range(d.num_users)]
  for u, i in zip(d.train_users.tolist(), d.train_items.tolist()):
    items[u].add(i)
  for u, i in enumerate(d.test_items.tolist()):
    items[u].add(i)
  return items


# ------------------------------------------------------------------ loading ---


def test_load_hand_made(tmp_path):
  d = data.load_ncf(_write(tmp_path), "t")
  assert (d.name, d.num_users, d.num_items) == ("t", 3, 6)
  np.testing.assert_array_equal(d.train_users, [0, 0, 1, 2, 2])
  np.testing.assert_array_equal(d.train_items, [0, 1, 0, 2, 3])
  np.testing.assert_array_equal(d.test_items, [2, 4, 5])
  np.testing.assert_array_equal(d.test_negatives, [[3, 4], [4, 0], [0, 1]])


def test_write_load_round_trip(tmp_path):
  original = datasets.generate_default(num_users=60, num_items=300, seed=3)
  data.write_ncf(original, tmp_path, "rt")
  files = sorted(os.listdir(tmp_path))  # no temp files left behind
  assert files == sorted(f"rt.{s}" for s in data.SUFFIXES)
  _assert_same(data.load_ncf(tmp_path, "rt"), original)


def test_lines_in_any_order_and_blank_variants_accepted(tmp_path):
  expected = data.load_ncf(_write(tmp_path / "a"), "t")
  test = "2\t5\t4\t22\n0\t2\t5.0\t20\n1\t4\t3\t21\n"  # unsorted, float
  negative = "(2,5)\t0\t1\n(1,4)\t4\t0\n(0,2)\t3\t4\n\n\n"  # blank tail
  # CRLF, trailing blanks on every line, no final newline.
  texts = [t.replace("\n", " \t\r\n").rstrip("\r\n")
           for t in (TRAIN, test, negative)]
  _write(tmp_path / "b", *texts)
  _assert_same(data.load_ncf(tmp_path / "b", "t"), expected)


# (file, line to replace or 0 for the whole file, new text, expected message
# after "<dir>/t.<file>").
MALFORMED = [
    ("train.rating", 0, "", ": file is empty"),
    ("test.negative", 0, " \n\n", ": file is empty"),
    ("train.rating", 2, "0\t1\t1", ":2: expected 4 columns, found 3"),
    ("train.rating", 3, "1\t0\t1\t12\t9", ":3: expected 4 columns, found 5"),
    ("train.rating", 2, "", ":2: expected 4 columns, found 0 (an empty "
     "line, or CR CR LF line ends)"),
    # CR CR LF (converted twice): an empty line after every line.
    ("train.rating", 0, "0\t0\t1\t10\r\r\n0\t1\t1\t11\r\r\n",
     ":2: expected 4 columns, found 0 (an empty line, or CR CR LF"),
    ("test.rating", 2, "1,4,3,21", ":2: expected 4 columns, found 1"),
    ("train.rating", 4, "2\tx\t1\t13", ":4: item 'x' is not an integer"),
    ("train.rating", 2, "0\t1.5\t1\t11", ":2: item '1.5' is not an integer"),
    ("test.rating", 3, "2\t5\tfive\t22", ":3: rating 'five' is not a number"),
    ("train.rating", 5, "2\t3\t1\tnoon",
     ":5: timestamp 'noon' is not a number"),
    ("train.rating", 2, "-1\t1\t1\t11", ":2: user -1 is not a valid id"),
    ("test.rating", 1, "0\t9999999999\t5\t20",
     ":1: item 9999999999 is not a valid id"),
    ("test.rating", 3, "5\t5\t4\t22", ":3: user 5 out of range"),
    ("test.rating", 3, "1\t5\t4\t22", ":3: second line for user 1"),
    ("test.negative", 3, "(1,4)\t0\t1", ":3: second line for user 1"),
    ("test.negative", 0, "(0,2)\t3\t4\n(1,4)\t4\t0",
     ": no line for user(s) [2]"),
    ("test.negative", 2, "(1,3)\t4\t0", ":2: header (1,3) does not match"),
    ("test.negative", 2, "(1,4)\t4\t0\t5", ":2: expected 2 negatives"),
    ("test.negative", 3, "(2,5)\t0", ":3: expected 2 negatives"),
    ("test.negative", 1, "(0,2)", ":1: no negatives"),
    ("test.negative", 2, "1,4\t4\t0", ":2: malformed header '1,4'"),
    ("test.negative", 2, "(1, 4)\t4\t0", ":2: malformed header '(1,'"),
    ("test.negative", 3, "(2,-5)\t0\t1", ":3: malformed header '(2,-5)'"),
    ("test.negative", 3, "(2,5)\t0\tz", ":3: negative 'z' is not an integer"),
    ("test.negative", 1, "(0,2)\t-3\t4", ":1: negative -3 is not a valid id"),
    # Ids that training cannot use, however they are written.
    ("test.negative", 2, "(1,4)\t-100000000\t0",
     ":2: negative -100000000 is not a valid id"),
    ("train.rating", 5, "2\t2147483647\t1\t14",
     ":5: item 2147483647 is not a valid id (an integer in 0..2147483646)"),
    ("train.rating", 3, "1\t" + "7" * 100 + "\t1\t12",
     f":3: item {'7' * 40}... is not a valid id"),
    ("test.negative", 2, f"({10**30},11)\t4\t0",
     f":2: header '({10**30},11)' holds an id beyond 2147483646"),
    ("test.negative", 2, f"({'9' * 5000},4)\t4\t0",
     f":2: header '({'9' * 39}...' holds an id beyond"),
    # A stray id: the catalogue would be 1 + the largest id.
    ("train.rating", 5, "2\t10000000\t1\t14",
     ":5: item 10000000 is far beyond the 7 distinct item ids"),
    ("test.negative", 2, "(1,4)\t100000000\t0",
     ":2: item 100000000 is far beyond the 7 distinct item ids"),
    # 3 or 4 columns, as many on every line as on the first.
    ("train.rating", 1, "0\t0\t1\t10\t5", ":1: expected 4 columns (user "
     "item rating timestamp) or 3 (user item rating), found 5"),
    ("test.rating", 1, "0\t2", ":1: expected 4 columns (user item rating "
     "timestamp) or 3 (user item rating), found 2"),
    ("train.rating", 1, "0\t0\t1", ":2: expected 3 columns, found 4"),
    # Floats as ids, garbage, a huge token, one line without negatives.
    ("train.rating", 5, "2\t3.0\t1\t14", ":5: item '3.0' is not an integer"),
    ("train.rating", 5, "2\t1e3\t1\t14", ":5: item '1e3' is not an integer"),
    ("test.negative", 2, "(1.0,4)\t4\t0", ":2: malformed header '(1.0,4)'"),
    ("train.rating", 0, "\x01\t\xff\t1\t2\n",
     ":1: user '\\x01' is not an integer"),
    # NUL bytes: numpy's byte strings would drop one that ends a token.
    ("train.rating", 2, "0\t1\x00\t1\t11", ":2: a NUL byte (UTF-16 text"),
    ("train.rating", 0, "0\t0\t1\t10\n0\t1\t1\t11\x00\x00\x00",
     ":2: a NUL byte"),
    ("train.rating", 3, "1\t" + "x" * 100_000 + "\t1\t12",
     f":3: item '{'x' * 40}...' is not an integer"),
    ("test.negative", 2, "(1,4)", ":2: expected 2 negatives (as on line 1), "
     "found 0"),
    # Ratings and timestamps are numbers, but no NaN or infinity; the first
    # such line is named, whichever its column.
    ("train.rating", 3, "1\t0\t1\tnan", ":3: timestamp 'nan' is not a "
     "finite number"),
    ("test.rating", 2, "1\t4\tinf\t21", ":2: rating 'inf' is not a finite "
     "number"),
    ("train.rating", 2, "0\t1\t1e999\t11", ":2: rating '1e999' is not a "
     "finite number"),
    ("train.rating", 0, TRAIN.replace("\t11\n", "\t-inf\n").replace(
        "1\t0\t1", "1\t0\tNaN"), ":2: timestamp '-inf' is not a finite"),
    ("train.rating", 0, "0\t0\t1\n0\t1\tnan\n1\t0\t1\n2\t2\t1\n",
     ":2: rating 'nan' is not a finite number"),
]


@pytest.mark.parametrize("suffix, line, text, message", MALFORMED)
def test_malformed_input_names_file_and_line(tmp_path, suffix, line, text,
                                             message):
  files = dict(zip(data.SUFFIXES, (TRAIN, TEST, NEGATIVE)))
  if line:
    lines = files[suffix].splitlines()
    lines[line - 1] = text
    text = "\n".join(lines) + "\n"
  files[suffix] = text
  _write(tmp_path, *files.values())
  with pytest.raises(data.DataError) as error:
    data.load_ncf(tmp_path, "t")
  assert f"{tmp_path}/t.{suffix}{message}" in str(error.value)


def test_repeated_training_pair_is_read_once_and_logged(tmp_path, caplog):
  # (0, 1) on lines 2 and 6: NCF reads the file into a 0/1 matrix, where
  # the repeat changes nothing; trained twice, it would count twice.
  _write(tmp_path, train=TRAIN + "0\t1\t1\t15\n")
  with caplog.at_level("WARNING"):
    repeated = data.load_ncf(tmp_path, "t")
  assert (f"{tmp_path}/t.train.rating:6: user 0, item 1 is already on line "
          "2; 1 repeated training pairs are read once") in caplog.text
  _write(tmp_path)
  once = data.load_ncf(tmp_path, "t")
  for name in ("train_users", "train_items", "test_items", "test_negatives"):
    np.testing.assert_array_equal(getattr(repeated, name),
                                  getattr(once, name))


def test_train_user_without_test_line(tmp_path):
  _write(tmp_path, test="0\t2\t5\t20\n1\t4\t3\t21\n")
  with pytest.raises(data.DataError,
                     match=r"t.train.rating:4: user 2 has no line in .*t.test"):
    data.load_ncf(tmp_path, "t")


def test_missing_files(tmp_path):
  _write(tmp_path)
  (tmp_path / "t.test.negative").unlink()
  (tmp_path / "t.train.rating").unlink()
  with pytest.raises(data.DataError,
                     match="missing t.train.rating, t.test.negative"):
    data.load_ncf(tmp_path, "t")
  with pytest.raises(data.DataError, match="download=True"):
    data.load_ncf(tmp_path, "ml-1m")
  # A file given as the folder: not "missing" files.
  with pytest.raises(data.DataError, match=re.escape(
      f"{tmp_path / 't.test.rating'}: not a folder; data.dir names")):
    data.load_ncf(tmp_path / "t.test.rating", "t")


@pytest.mark.skipif(not REAL_ML1M.is_dir(), reason=(
    "set DOT_VS_LEARNED_ML1M_DIR to a folder with the NCF ML-1M files"))
def test_real_ml1m():
  d = data.load_ncf(REAL_ML1M, "ml-1m")
  assert (d.num_users, d.num_items, len(d.train_users)) == (6040, 3706, 994169)
  assert d.test_negatives.shape == (6040, 99)
  # Sec. 4.1 quirk kept as published: 156 users rank their test item twice.
  assert (d.test_negatives == d.test_items[:, None]).any(axis=1).sum() == 156
  # Only the test files are the originals; the train file here is a rebuild.
  for suffix in ("test.rating", "test.negative"):
    pins = datasets.CHECKSUMS["ml-1m"][suffix]
    assert datasets._mismatch(REAL_ML1M / f"ml-1m.{suffix}", pins) == ""
    content = (REAL_ML1M / f"ml-1m.{suffix}").read_bytes()
    assert hashlib.sha256(content).hexdigest() == pins["sha256"]


def test_written_files_are_readable_by_others_as_umask_allows(tmp_path):
  old = os.umask(0o022)
  try:
    data.write_ncf(datasets.generate_default(120, 200), tmp_path, "toy")
  finally:
    os.umask(old)
  for path in tmp_path.iterdir():
    assert path.stat().st_mode & 0o777 == 0o644, path


def test_tolerated_oddities_are_logged_with_file_and_line(tmp_path, caplog):
  # The hand-made files: test items 4 and 5 never occur in training, and
  # user 1's negative 0 is one of its training items (line 2).
  _write(tmp_path)
  with caplog.at_level("WARNING"):
    d = data.load_ncf(tmp_path, "t")
  text = caplog.text
  assert f"{tmp_path}/t.test.rating: 2 test items never occur in " \
         "t.train.rating (first: user 1, item 4)" in text
  assert f"{tmp_path}/t.test.negative: 1 sampled negatives of 1 users are " \
         "training positives of that user (first: line 2, user 1)" in text
  assert "no training interaction" not in text
  np.testing.assert_array_equal(d.test_negatives[1], [4, 0])  # kept
  caplog.clear()
  with caplog.at_level("WARNING"):
    data.load_ncf(_write(tmp_path / "b", train=TRAIN.replace("1\t0\t1\t12\n",
                                                             "")), "t")
  assert "1 users have no training interaction (first: user 1)" in caplog.text


# --------------------------------------------- what the loader now refuses ---


def test_test_pair_in_training_is_refused(tmp_path):
  # Users 1 and 2 also have their test items (4, 5) on train lines 6 and 7.
  _write(tmp_path, train=TRAIN + "1\t4\t1\t15\n2\t5\t1\t16\n")
  with pytest.raises(data.DataError) as error:
    data.load_ncf(tmp_path, "t")
  assert str(error.value) == (
      f"{tmp_path}/t.test.rating:2: 2 users' test item is also in "
      "t.train.rating (first: line 2, user 1, item 4, training line 6); a "
      "held-out item must not be a training pair: rebuild the split with "
      "python -m dot_vs_learned.splits")


@pytest.mark.parametrize("item, ok", [(1013, True), (1014, False)])
def test_catalogue_bound_is_twice_the_distinct_ids_plus_1000(tmp_path, item,
                                                             ok):
  # 7 distinct item ids with `item`: 1 + item may be at most 2 x 7 + 1000.
  _write(tmp_path, train=TRAIN.replace("2\t3\t1\t14", f"2\t{item}\t1\t14"))
  if ok:
    assert data.load_ncf(tmp_path, "t").num_items == 1014
  else:
    with pytest.raises(data.DataError, match=r"t.train.rating:5: item 1014 "
                       r"is far beyond .* ids >= 2 x 7 \+ 1000 = 1014"):
      data.load_ncf(tmp_path, "t")


def test_three_column_files_load_with_a_note(tmp_path, caplog):
  # Published elsewhere as `user item rating`: the same data without times.
  expected = data.load_ncf(_write(tmp_path / "four"), "t")
  drop_time = lambda text: "".join(line.rsplit("\t", 1)[0] + "\n"
                                   for line in text.splitlines())
  _write(tmp_path / "three", train=drop_time(TRAIN), test=drop_time(TEST))
  with caplog.at_level("WARNING"):
    _assert_same(data.load_ncf(tmp_path / "three", "t"), expected)
  for suffix in ("train.rating", "test.rating"):
    assert (f"{tmp_path}/three/t.{suffix}: 3 columns (user item rating), no "
            "timestamp: timestamps are unknown and taken as 0") in caplog.text
  assert "--pick=random" in caplog.text


def test_byte_order_mark_and_cr_line_ends_accepted(tmp_path):
  expected = data.load_ncf(_write(tmp_path / "a"), "t")
  cr = lambda text: text.replace("\n", "\r")
  _write(tmp_path / "b", "\ufeff" + cr(TRAIN), cr(TEST), "\ufeff" + NEGATIVE)
  _assert_same(data.load_ncf(tmp_path / "b", "t"), expected)


def _load_in_thread(directory):
  """load_ncf in a thread; its error, or a failure if it blocks for 20 s."""
  outcome = []

  def load():
    try:
      data.load_ncf(directory, "t")
      outcome.append(None)
    except data.DataError as e:
      outcome.append(e)
  thread = threading.Thread(target=load, daemon=True)
  thread.start()
  thread.join(20)
  assert outcome, "load_ncf blocked"
  return outcome[0]


def test_fifo_or_directory_in_place_of_a_file_is_refused_at_once(tmp_path):
  _write(tmp_path)
  (tmp_path / "t.train.rating").unlink()
  os.mkfifo(tmp_path / "t.train.rating")  # no writer: reading would block
  assert str(_load_in_thread(tmp_path)) == (
      f"{tmp_path}/t.train.rating: a FIFO, not a regular file")
  (tmp_path / "t.train.rating").unlink()
  (tmp_path / "t.train.rating").mkdir()
  assert str(_load_in_thread(tmp_path)) == (
      f"{tmp_path}/t.train.rating: a directory, not a regular file")


def test_bad_last_line_of_a_long_file_is_named(tmp_path):
  # 100,000 valid lines, then a bad rating: found past the first chunks.
  lines = "".join(f"{u}\t{i}\t1\t0\n" for u in range(3)
                  for i in range(6, 33_339))
  _write(tmp_path, train=lines + "2\t3\t4.5\t0\n2\t3\tfive\t0\n")
  with pytest.raises(data.DataError,
                     match=r"t.train.rating:100001: rating 'five' is not a"):
    data.load_ncf(tmp_path, "t")
