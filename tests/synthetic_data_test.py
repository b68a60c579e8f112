"""Tests of synthetic_data.py, the §4 generator."""

import numpy as np
import pytest

from dot_vs_learned import synthetic_data
from synthetic_test import _config


@pytest.mark.parametrize("dim", [2, 16, 128])
def test_embedding_scale_gives_the_netflix_variances(dim):
  s = synthetic_data.embedding_stddev(dim)
  assert dim * s**4 == pytest.approx(1.13**2 - 0.85**2)


def test_sample_pairs_are_distinct_and_uniform():
  rng = np.random.default_rng(0)
  for rows, cols, count in [(300, 300, 30_000), (20, 30, 500)]:  # sparse, dense
    pairs = synthetic_data.sample_pairs(rng, rows, cols, count)
    assert pairs.shape == (count, 2) and pairs.dtype == np.int32
    assert len(np.unique(pairs[:, 0] * cols + pairs[:, 1])) == count
    assert pairs[:, 0].max() < rows and pairs[:, 1].max() < cols
    per_row = np.bincount(pairs[:, 0], minlength=rows)
    expected = count / rows
    assert np.abs(per_row - expected).max() < 6 * np.sqrt(expected)
  with pytest.raises(ValueError, match="601 distinct pairs asked of 600"):
    synthetic_data.sample_pairs(rng, 20, 30, 601)


def test_generator_statistics():
  c = _config(num_fresh=50_000).synthetic
  data = synthetic_data.generate(2000, 16, 0, c)
  assert len(data.train) == 180_000 and len(data.test) == 20_000
  both = np.concatenate([data.train, data.test])
  assert len(np.unique(both[:, 0] * 2000 + both[:, 1])) == 200_000
  # Var y = d s^4 + 0.85^2 = 1.13^2, on seen pairs and on fresh ones.
  assert np.var(data.train_labels) == pytest.approx(1.13**2, rel=0.02)
  assert np.var(data.fresh_labels) == pytest.approx(1.13**2, rel=0.03)
  dot = np.einsum("nd,nd->n", data.user[data.test[:, 0]],
                  data.item[data.test[:, 1]])
  assert np.sqrt(np.mean((data.test_labels - dot)**2)) == pytest.approx(
      0.85, rel=0.02)
  # Fresh embeddings appear nowhere in P or Q.
  seen = {row.tobytes() for row in np.concatenate([data.user, data.item])}
  assert not seen & {row.tobytes() for row in data.fresh_user}
  assert not seen & {row.tobytes() for row in data.fresh_item}
  again = synthetic_data.generate(2000, 16, 0, c)
  np.testing.assert_array_equal(again.train, data.train)
  other = synthetic_data.generate(2000, 16, 1, c)
  assert not np.array_equal(other.train, data.train)
