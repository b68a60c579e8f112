"""Tests of EASE^R (ease.py) against Steck's closed form in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import dot_baselines
from dot_vs_learned import ease
from dot_vs_learned import evaluate
from dot_vs_learned import models

NUM_USERS, NUM_ITEMS = 40, 15


def _history():
  rng = np.random.default_rng(0)
  x = (rng.random((NUM_USERS, NUM_ITEMS)) < 0.3).astype(np.float32)
  x[7] = 0.0  # a user without items
  users, items = np.nonzero(x)
  order = rng.permutation(len(users))
  return x, users[order], items[order]


def _steck(x, reg):
  """B = I - P diagMat(1 / diag(P)), P = (X^T X + lambda I)^-1 (float64)."""
  p = np.linalg.inv(x.T.astype(np.float64) @ x + reg * np.eye(x.shape[1]))
  return np.eye(x.shape[1]) - p / np.diag(p)[None, :]


def _steck_t(x, reg):
  """B^T, the layout ease.py returns: row i is column i of B."""
  return _steck(x, reg).T


def _diag_p(x, reg):
  """diag((X^T X + lambda I)^-1) (float64)."""
  return np.diag(np.linalg.inv(x.T.astype(np.float64) @ x +
                               reg * np.eye(x.shape[1])))


def test_history_and_gram_in_uneven_user_chunks():
  x, users, items = _history()
  np.testing.assert_array_equal(
      ease.history_matrix(np.append(users, users[0]),
                          np.append(items, items[0]), NUM_USERS, NUM_ITEMS),
      x)  # a repeated pair counts once
  for chunk in (7, 64):  # 40 users: a partial last chunk; one chunk
    np.testing.assert_array_equal(
        ease.gram(users, items, NUM_USERS, NUM_ITEMS, chunk_users=chunk),
        x.T @ x)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="host memory")
def test_host_arrays_reach_the_cpu_device_without_a_copy():
  x, users, items = _history()
  history = ease.history_matrix(users, items, NUM_USERS, NUM_ITEMS)
  gram = ease.gram_numpy(users, items, NUM_USERS, NUM_ITEMS)
  for array in (history, gram, ease.host_zeros((3, 5))):
    assert array.ctypes.data % 64 == 0 and array.dtype == np.float32
    device = ease.on_device(array)
    # XLA:CPU reads numpy's own buffer: a 6.7 GB B is not doubled.
    assert device.unsafe_buffer_pointer() == array.ctypes.data
    np.testing.assert_array_equal(device, array)
  np.testing.assert_array_equal(history, x)


def test_fit_equals_numpy_formula_with_zero_diagonal():
  x, _, _ = _history()
  weights, diag = ease.fit(jnp.asarray(x.T @ x), 3.0)
  np.testing.assert_allclose(weights, _steck_t(x, 3.0), atol=2e-6)
  np.testing.assert_allclose(diag, _diag_p(x, 3.0), rtol=1e-5)
  np.testing.assert_array_equal(np.diagonal(weights), 0.0)
  # B's rows are B^T's scaled: B[j, i] = B^T[j, i] diag_j / diag_i.
  np.testing.assert_allclose(
      np.asarray(weights) * np.asarray(diag)[:, None] / np.asarray(diag),
      _steck(x, 3.0), atol=2e-6)
  # B minimizes ||X - X B||^2 + lambda ||B||^2 column by column subject to
  # B_ii = 0: the gradient vanishes off the diagonal.
  w = np.asarray(weights, np.float64).T  # B
  gradient = x.T @ (x @ w - x) + 3.0 * w
  np.testing.assert_allclose(gradient * (1 - np.eye(NUM_ITEMS)), 0.0,
                             atol=1e-4)


@pytest.mark.parametrize("block", [4, 2048])  # mirrored in uneven blocks
def test_in_place_fit_equals_numpy_formula_in_gs_own_buffer(block):
  x, users, items = _history()
  g = ease.gram_numpy(np.append(users, users[:3]), np.append(items, items[:3]),
                      NUM_USERS, NUM_ITEMS)
  np.testing.assert_array_equal(g, x.T @ x)  # repeated pairs count once
  weights, diag = ease.fit_in_place(g, 3.0, block=block)
  assert weights is g
  np.testing.assert_allclose(weights, _steck_t(x, 3.0), atol=2e-6)
  np.testing.assert_allclose(diag, _diag_p(x, 3.0), rtol=1e-5)
  np.testing.assert_array_equal(np.diagonal(weights), 0.0)
  with pytest.raises(ValueError, match="C-contiguous float32"):
    ease.fit_in_place(np.zeros((3, 3)), 1.0)


def test_in_place_fit_runs_lapack_on_one_thread(monkeypatch):
  # Threaded OpenBLAS potrf crashed at I >= 32,768 (ease.py).
  import scipy.linalg.lapack as lapack  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top
  threads, real = [], lapack.spotrf

  def spotrf(*args, **kwargs):
    threads.extend(lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                   if lib["user_api"] == "blas")
    return real(*args, **kwargs)

  monkeypatch.setattr(lapack, "spotrf", spotrf)
  _, users, items = _history()
  ease.fit_in_place(ease.gram_numpy(users, items, NUM_USERS, NUM_ITEMS), 3.0)
  assert threads and set(threads) == {1}


def test_grid_through_one_eigendecomposition_equals_direct_inverses():
  x, _, _ = _history()
  regs = np.array([0.5, 3.0, 40.0], np.float32)
  grid, diags = ease.fit_grid(jnp.asarray(x.T @ x), jnp.asarray(regs))
  assert grid.shape == (3, NUM_ITEMS, NUM_ITEMS)
  assert diags.shape == (3, NUM_ITEMS)
  for weights, diag, reg in zip(grid, diags, regs):
    np.testing.assert_allclose(weights, _steck_t(x, reg), atol=2e-5)
    np.testing.assert_allclose(diag, _diag_p(x, reg), rtol=1e-4)
    np.testing.assert_array_equal(np.diagonal(weights), 0.0)


def test_score_is_history_times_weights():
  x, _, _ = _history()
  weights = _steck(x, 3.0).astype(np.float32)
  params = models.EaseParams(jnp.asarray(weights.T), jnp.asarray(x))
  rng = np.random.default_rng(1)
  users = rng.integers(0, NUM_USERS, (6, 5))
  items = rng.integers(0, NUM_ITEMS, (6, 5))
  np.testing.assert_allclose(ease.score(params, users, items, chunk=8),
                             (x @ weights)[users, items], atol=1e-5)
  # Score of user 0 for item 2: the sum of B[j, 2] over the user's items j.
  np.testing.assert_allclose(
      ease.score(params, jnp.array([0]), jnp.array([2])),
      [weights[np.flatnonzero(x[0]), 2].sum()], atol=1e-5)


def test_grid_metrics_beat_popularity_and_match_one_fit():
  data = datasets.generate_default(num_users=300, num_items=200)
  args = (data.train_users, data.train_items, data.num_users, data.num_items)
  history = jnp.asarray(ease.history_matrix(*args))
  test, negatives = (jnp.asarray(data.test_items),
                     jnp.asarray(data.test_negatives))
  mask = jnp.asarray(evaluate.candidate_mask(data.test_items,
                                             data.test_negatives))
  regs = jnp.asarray([10.0, 100.0])
  grid = ease.grid_metrics(ease.gram(*args), regs, history, test, negatives,
                           mask, k=10)
  assert grid["hr"].shape == (2,)
  popularity = dot_baselines.popularity_metrics(data, 10)
  assert popularity["hr"] == pytest.approx(0.3, abs=1e-6)
  assert float(grid["hr"][1]) > 0.7 and float(grid["ndcg"][1]) > 0.45
  one = evaluate.sampled_metrics(
      ease.score, models.EaseParams(ease.fit(ease.gram(*args), 100.0)[0],
                                    history),
      test, negatives, mask, 10)
  # Eigendecomposition and Cholesky agree to float32 rounding: the same
  # ranks (at most a tie flipped).
  assert np.mean(np.asarray(grid["rank"][1]) == np.asarray(one["rank"])) > .99
  np.testing.assert_allclose(grid["hr"][1], one["hr"], atol=1 / 300 + 1e-6)
