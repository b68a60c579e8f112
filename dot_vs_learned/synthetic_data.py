"""The data of §4: a dot product plus noise, for a grid cell (d, M) and seed.

User and item embeddings P [M, d], Q [N = M, d] ~ N(0, s^2 I) with s^2 =
sqrt((1.13^2 - 0.85^2) / d), so that the trivial model 0 has RMSE ~1.13 and
the dot product, the truth, ~0.85; labels y = <p, q> + e, e ~ N(0, 0.85^2);
`pairs_per_user` * M distinct (user, item) pairs drawn uniformly, 90% train
and 10% test; and a fresh set of pairs whose embeddings are drawn anew.
Vectorized numpy: no Python loop over users or pairs.
"""

from typing import NamedTuple

import numpy as np


class Data(NamedTuple):
  """One cell's data; fields carry a leading seed axis when stacked."""
  user: np.ndarray  # [M, d]
  item: np.ndarray  # [N, d]
  train: np.ndarray  # [n_train, 2] int32 (user, item)
  train_labels: np.ndarray  # [n_train]
  test: np.ndarray  # [n_test, 2]
  test_labels: np.ndarray  # [n_test]
  fresh_user: np.ndarray  # [F, d]: embeddings seen nowhere else
  fresh_item: np.ndarray  # [F, d]
  fresh_labels: np.ndarray  # [F]


def embedding_stddev(dim, label_noise=0.85, trivial_rmse=1.13) -> float:
  """s with d s^4 = trivial_rmse^2 - label_noise^2 (Var <p, q> = d s^4)."""
  return ((trivial_rmse**2 - label_noise**2) / dim) ** 0.25


def sample_pairs(rng, num_rows, num_cols, count) -> np.ndarray:
  """`count` distinct (row, col) pairs, uniform, in random order: [count, 2].

  Draws with replacement, keeps the distinct ones and draws again until
  enough; the set is uniform among sets of its size, so a random `count` of
  it is a uniform sample without replacement.
  """
  total = num_rows * num_cols
  if count > total:
    raise ValueError(f"{count} distinct pairs asked of {total}")
  if count > total // 4:  # dense: a permutation is cheap and exact
    ids = rng.permutation(total)[:count]
  else:
    ids = np.empty(0, np.int64)
    while ids.size < count:
      more = rng.integers(0, total, int((count - ids.size) * 1.05) + 64)
      ids = np.unique(np.concatenate([ids, more]))
    ids = rng.permutation(ids)[:count]
  return np.stack([ids // num_cols, ids % num_cols], axis=1).astype(np.int32)


def _dot_labels(rng, user, item, pairs, noise, chunk=1 << 20) -> np.ndarray:
  """<p_u, q_i> + e for each pair, in chunks (no [pairs, d] array at once)."""
  out = np.empty(len(pairs), np.float32)
  for start in range(0, len(pairs), chunk):
    u, i = pairs[start:start + chunk].T
    out[start:start + chunk] = np.einsum("nd,nd->n", user[u], item[i])
  return out + noise * rng.standard_normal(len(pairs), dtype=np.float32)


def generate(num_users, dim, seed, c) -> Data:
  """The data of one seed of cell (d, M), deterministic in (seed, M, d)."""
  rng = np.random.Generator(np.random.PCG64([seed, num_users, dim]))
  s = embedding_stddev(dim, c.label_noise, c.trivial_rmse)
  user = s * rng.standard_normal((num_users, dim), dtype=np.float32)
  item = s * rng.standard_normal((num_users, dim), dtype=np.float32)
  pairs = sample_pairs(rng, num_users, num_users,
                       c.pairs_per_user * num_users)
  labels = _dot_labels(rng, user, item, pairs, c.label_noise)
  num_train = int(round(c.train_fraction * len(pairs)))
  fresh_user = s * rng.standard_normal((c.num_fresh, dim), dtype=np.float32)
  fresh_item = s * rng.standard_normal((c.num_fresh, dim), dtype=np.float32)
  both = np.arange(c.num_fresh, dtype=np.int32)
  fresh_labels = _dot_labels(rng, fresh_user, fresh_item,
                             np.stack([both, both], 1), c.label_noise)
  return Data(user, item, pairs[:num_train], labels[:num_train],
              pairs[num_train:], labels[num_train:], fresh_user, fresh_item,
              fresh_labels)


def stack_seeds(num_users, dim, c, num_seeds=None) -> Data:
  """The data of every seed of a cell, stacked on a leading axis."""
  seeds = range(c.seed, c.seed + (num_seeds or c.num_seeds))
  per_seed = [generate(num_users, dim, s, c) for s in seeds]
  return Data(*(np.stack(arrays) for arrays in zip(*per_seed)))
