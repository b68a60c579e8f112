"""Tests of MF with biases (Eq. 2) and popularity."""

import jax
import numpy as np

from dot_vs_learned import models


def test_init_shapes_biases_and_scale():
  params = models.init_mf(jax.random.key(0), 300, 200, 65, 0.1)
  assert params.user.shape == (300, 65) and params.item.shape == (200, 65)
  assert float(params.bias) == 0.0
  np.testing.assert_array_equal(params.user[:, 0], 0.0)
  np.testing.assert_array_equal(params.item[:, 0], 0.0)
  assert abs(float(np.std(params.user[:, 1:])) - 0.1) < 0.005


def test_mf_score_is_eq2():
  rng = np.random.default_rng(0)
  user, item = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
  params = models.MFParams(user, item, np.float64(0.25))
  users, items = np.array([0, 2, 2]), np.array([4, 0, 1])
  expected = [0.25 + user[u, 0] + item[i, 0] + user[u, 1:] @ item[i, 1:]
              for u, i in zip(users, items)]
  np.testing.assert_allclose(models.mf_score(params, users, items), expected,
                             rtol=1e-5)


def test_popularity_counts_and_score():
  counts = models.popularity_counts(np.array([2, 0, 2, 2]), 4)
  np.testing.assert_array_equal(counts, [1, 0, 3, 0])
  np.testing.assert_array_equal(
      models.popularity_score(counts, np.array([0, 1]), np.array([2, 1])),
      [3, 0])
