"""Tests of logs.py: reading raw interaction logs for the split builder."""

import numpy as np
import pytest

from dot_vs_learned import data
from dot_vs_learned import logs


def _read(tmp_path, text, fmt="auto", name="log"):
  """Writes `text` (str or bytes) to a file and reads it as a log."""
  path = tmp_path / name
  path.write_bytes(text if isinstance(text, bytes) else text.encode())
  return logs.read_log(path, fmt)


def _pairs(log):
  """Returns the log's (user, item) lines as their original ids."""
  return [(log.user_ids[u], log.item_ids[i])
          for u, i in zip(log.users.tolist(), log.items.tolist())]


def test_header_found_by_known_names_in_any_column_order(tmp_path):
  # Not user/item/timestamp: customer_id, product_id, ts; string ids.
  log = _read(tmp_path, "ts,product_id,customer_id\n5,p1,c1\n6,p2,c1\n"
              "1,p1,c2\n")
  assert _pairs(log) == [("c1", "p1"), ("c1", "p2"), ("c2", "p1")]
  np.testing.assert_array_equal(log.times, [5, 6, 1])
  assert log.times.dtype == np.int64
  np.testing.assert_array_equal(log.users, [0, 0, 1])  # first appearance
  assert log.user_ids == ["c1", "c2"] and log.item_ids == ["p1", "p2"]


def test_header_found_by_content_must_name_user_and_item(tmp_path):
  # No number where the lines below hold numbers: a header, not a user "a".
  with pytest.raises(data.DataError,
                     match=r"log:1: header 'a,b,ts' names no user column"):
    _read(tmp_path, "a,b,ts\n1,2,5\n1,3,6\n")
  with pytest.raises(data.DataError, match="log:1: header 'user,when' names "
                     "no item column"):
    _read(tmp_path, "user\twhen\n1\t5\n")
  # String ids throughout and unknown names: data lines, as written.
  log = _read(tmp_path, "alice,x1\nbob,x2\n")
  assert _pairs(log) == [("alice", "x1"), ("bob", "x2")] and log.times is None


def test_header_columns_not_used_are_logged(tmp_path, caplog):
  with caplog.at_level("WARNING"):
    log = _read(tmp_path, "user,item,event_ms,title\n1,2,5,Heat\n")
  assert "log:1: columns ['event_ms', 'title'] ignored" in caplog.text
  assert log.times is None


def test_csv_quotes_and_empty_fields(tmp_path):
  log = _read(tmp_path, 'user,item,timestamp\n"a,b", x ,3\nc,"y""z",4\n')
  assert _pairs(log) == [("a,b", "x"), ("c", 'y"z')]
  with pytest.raises(data.DataError, match=r"log:3: item id is empty"):
    _read(tmp_path, "1,2,5,100\n1,3,5,101\n2,,4,5\n")  # was: 3 columns
  with pytest.raises(data.DataError, match=r"log:2: user id is empty"):
    _read(tmp_path, "1\t2\t5\t100\n\t3\t5\t101\n", fmt="tsv")
  with pytest.raises(data.DataError, match="log:2: a quoted field runs past"):
    _read(tmp_path, '1,2\n1,"3\n4",5\n')


@pytest.mark.parametrize("token, problem", [
    ("nan", "'nan' is not a finite number"),
    ("-inf", "'-inf' is not a finite number"),
    ("1e30", "'1e30' is out of range"),
    ("99999999999999999999", "'99999999999999999999' is out of range"),
    ("noon", "'noon' is not a number"),
])
def test_bad_timestamps_name_file_and_line(tmp_path, token, problem):
  with pytest.raises(data.DataError, match=f"log:3: timestamp {problem}"):
    _read(tmp_path, f"user,item,ts\n1,2,7\n1,3,{token}\n2,2,1\n")


def test_timestamps_exact_as_integers_fractional_as_floats(tmp_path):
  # Nanoseconds: 2**53 < t, float64 would make the two times equal.
  log = _read(tmp_path, "1,2,5,1700000000000000001\n"
              "1,3,5,1700000000000000000\n")
  np.testing.assert_array_equal(log.times, [1700000000000000001,
                                            1700000000000000000])
  log = _read(tmp_path, "1::2::5::1.5\n1::3::5::-2\n")
  assert log.times.dtype == np.float64
  np.testing.assert_array_equal(log.times, [1.5, -2.0])


def test_bom_crlf_and_cr_give_the_same_log(tmp_path):
  plain = _read(tmp_path, "1::2::5::10\n1::3::5::20\n")
  for text in ("\ufeff1::2::5::10\n1::3::5::20\n",
               "1::2::5::10\r\n1::3::5::20\r\n", "1::2::5::10\r1::3::5::20"):
    log = _read(tmp_path, text)
    assert _pairs(log) == _pairs(plain) == [("1", "2"), ("1", "3")]
    np.testing.assert_array_equal(log.times, plain.times)
  # Before a header, the BOM would glue to the first name.
  log = _read(tmp_path, "\ufeffuserId,movieId,rating,timestamp\n1,2,5,10\n")
  assert _pairs(log) == [("1", "2")] and log.times.tolist() == [10]


def test_ids_are_text_as_written(tmp_path):
  log = _read(tmp_path, "1.5 -4\n-4 99999999999999999999999\n07 1.5\n7 x\n")
  assert log.user_ids == ["1.5", "-4", "07", "7"]
  assert log.item_ids == ["-4", "99999999999999999999999", "1.5", "x"]


# (text, fmt, expected message after "<dir>/log").
MALFORMED = [
    ("", "auto", ": file is empty"),
    (" \n\t\n", "auto", ": file is empty"),
    ("1\n2\n", "auto", ":1: expected 2-4 columns (user item [rating] "
     "[timestamp]) or a header, found 1"),
    ("1,2,3,4,5\n", "auto", ":1: expected 2-4 columns"),
    ("1::2::5::10\n1\t3\t5\t20\n", "auto", ":2: expected 4 columns, found 1"),
    ("1,2,5,10\n1,3\n", "auto", ":2: expected 4 columns, found 2"),
    ("1,2,5,10\n1::3::5::20\n", "auto", ":2: expected 4 columns, found 1"),
    ("1::2::5::10\n", "csv", ":1: expected 2-4 columns"),
    ("1,2,5,10\n", "tsv", ":1: expected 2-4 columns"),
    ("1,2,5,10\n\n1,3,5,11\n", "auto", ":2: expected 4 columns, found 0"),
    ("1::2::five::10\n", "auto", ":1: rating 'five' is not a number"),
    ("1,2,nan\n", "auto", ":1: rating 'nan' is not a finite number"),
    ("user,item,ts\n", "auto", ": no interactions after the header"),
    ("user,item\n1,2\nuser,item\n3,4\n", "auto", ":3: the header again"),
    ("1,2\x00,5,1\n", "auto", ":1: a NUL byte"),
    ("1,2\x01,5,1\n", "auto", ":1: item id '2\\x01' holds a control"),
    # Two logs with byte-order marks joined by cat: the second mark is no
    # part of an id.
    ("\ufeff1,2,5,1\n1,3,5,2\n\ufeff2,2,5,3\n", "auto",
     ":3: user id '\\ufeff2' holds a control character"),
    (b"1,caf\xe9\n", "auto", ":1: not UTF-8 text"),
    ("1,2\n", "json", ": unknown fmt 'json'"),
]


@pytest.mark.parametrize("text, fmt, message", MALFORMED)
def test_malformed_log_names_file_and_line(tmp_path, text, fmt, message):
  with pytest.raises(data.DataError) as error:
    _read(tmp_path, text, fmt)
  assert f"{tmp_path}/log{message}" in str(error.value)
  assert "\n" not in str(error.value)


def test_not_a_regular_file_is_refused_without_reading(tmp_path):
  with pytest.raises(data.DataError, match="missing: cannot open"):
    logs.read_log(tmp_path / "missing")
  with pytest.raises(data.DataError, match="a directory, not a regular file"):
    logs.read_log(tmp_path)
