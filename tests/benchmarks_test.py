"""Tests of benchmarks/numpy_sgd.py, the per-example SGD speed baseline, and
of the benchmarks' bad-input errors (benchmarks/cli.py)."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks/numpy_sgd.py"
_SPEC = importlib.util.spec_from_file_location("numpy_sgd", _PATH)
numpy_sgd = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(numpy_sgd)


def _tables():
  """3 users and 4 items with d = 3 (bias + 2 factors)."""
  rng = np.random.default_rng(0)
  return rng.normal(0, 0.5, (3, 3)), rng.normal(0, 0.5, (4, 3))


def test_one_example_matches_hand_computation():
  user, item = _tables()
  user[1] = [0.1, 0.2, -0.3]
  item[2] = [0.2, 0.3, 0.2]
  other_user, other_item = np.delete(user, 1, 0), np.delete(item, 2, 0)
  # score = -0.3 + 0.1 + 0.2 + (0.06 - 0.06) = 0, so g = 1 - 1/2 = 0.5.
  bias = numpy_sgd.sgd_epoch(user, item, -0.3, np.array([1]), np.array([2]),
                             np.array([1.0]), learning_rate=0.1, reg=0.5)
  # p <- p + 0.1 * (0.5 * [1, .3, .2] - 0.5 * [.1, .2, -.3])
  np.testing.assert_allclose(user[1], [0.145, 0.205, -0.275], atol=1e-12)
  # q <- q + 0.1 * (0.5 * [1, .2, -.3] - 0.5 * [.2, .3, .2]), with the old p.
  np.testing.assert_allclose(item[2], [0.24, 0.295, 0.175], atol=1e-12)
  # b <- -0.3 + 0.1 * (0.5 + 0.5 * 0.3)
  np.testing.assert_allclose(bias, -0.235, atol=1e-12)
  np.testing.assert_array_equal(np.delete(user, 1, 0), other_user)
  np.testing.assert_array_equal(np.delete(item, 2, 0), other_item)


def test_repeated_rows_equal_step_by_step_recomputation():
  user, item = _tables()
  users = np.array([0, 1, 0, 2, 0, 1])
  items = np.array([3, 3, 1, 0, 3, 2])
  labels = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
  eta, reg = 0.3, 0.1
  want_user, want_item, want_bias = user.copy(), item.copy(), 0.2
  for u, i, y in zip(users, items, labels):
    p, q = want_user[u].copy(), want_item[i].copy()
    g = y - 1 / (1 + np.exp(-(want_bias + p[0] + q[0] + p[1:] @ q[1:])))
    want_user[u] = p + eta * (g * np.r_[1.0, q[1:]] - reg * p)
    want_item[i] = q + eta * (g * np.r_[1.0, p[1:]] - reg * q)
    want_bias += eta * (g - reg * want_bias)
  bias = numpy_sgd.sgd_epoch(user, item, 0.2, users, items, labels, eta, reg)
  np.testing.assert_allclose(user, want_user, rtol=1e-12)
  np.testing.assert_allclose(item, want_item, rtol=1e-12)
  np.testing.assert_allclose(bias, want_bias, rtol=1e-12)


def test_float32_tables_stay_float32():
  user, item = (t.astype(np.float32) for t in _tables())
  bias = numpy_sgd.sgd_epoch(user, item, 0.0, np.array([0, 2]),
                             np.array([1, 1]), np.array([1.0, 0.0]), 0.1, 0.0)
  assert user.dtype == item.dtype == np.float32
  assert isinstance(bias, np.float32) and bias != 0


def test_make_examples_one_epoch():
  train_users = np.array([0, 0, 1, 2, 2, 2], np.int32)
  train_items = np.array([1, 3, 0, 2, 3, 4], np.int32)
  users, items, labels = numpy_sgd.make_examples(
      train_users, train_items, 5, 3, np.random.default_rng(0))
  assert users.shape == items.shape == labels.shape == (24,)
  # Every positive once with label 1; each user gets 1 + m rows per positive.
  positives = sorted(zip(users[labels == 1].tolist(),
                         items[labels == 1].tolist()))
  assert positives == sorted(zip(train_users.tolist(), train_items.tolist()))
  np.testing.assert_array_equal(np.bincount(users), [8, 4, 12])
  assert items.min() >= 0 and items.max() < 5
  again = numpy_sgd.make_examples(train_users, train_items, 5, 3,
                                  np.random.default_rng(0))
  for a, b in zip((users, items, labels), again):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("argv, message", [
    (["mf_speed.py", "--dims=16,abc"], "FATAL Flags parsing error: flag "
     "--dims=['16', 'abc']: must be whole numbers >= 2, separated by commas"),
    (["ials_speed.py", "--data_dir=MISSING"], "error: MISSING: missing "
     "ml-1m.train.rating, ml-1m.test.rating, ml-1m.test.negative; put"),
])
def test_bad_input_to_a_benchmark_is_an_error_line(tmp_path, argv, message):
  missing = str(tmp_path / "missing")
  script, *flags = argv
  out = subprocess.run(
      [sys.executable, str(_PATH.parent / script),
       *(f.replace("MISSING", missing) for f in flags)],
      capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 1
  assert message.replace("MISSING", missing) in out.stderr
  assert "Traceback" not in out.stderr
