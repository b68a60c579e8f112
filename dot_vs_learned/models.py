"""Similarity models: matrix factorization with biases (Eq. 2) and popularity.

Dimension convention (paper Eq. 2 and App. A.1): the embedding dimension `d`
counts the bias. A user row is `[p_1, p_2..p_d]` where `p_1` is the user bias
and `p_2..p_d` are the d-1 factors; likewise for items. The global bias `b` is
one extra scalar. So `d = 64` means 63 factors plus a bias per side, as in the
paper's reference code (`--embedding_dim`: "the first dimension will be used
for the bias").
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MFParams(NamedTuple):
  user: jax.Array  # [U, d]: column 0 user bias, columns 1.. factors.
  item: jax.Array  # [I, d]: column 0 item bias, columns 1.. factors.
  bias: jax.Array  # []: global bias b.


def init_mf(key, num_users, num_items, dim, stddev) -> MFParams:
  """Factors ~ N(0, stddev^2); biases start at zero as in the reference code."""
  key_u, key_i = jax.random.split(key)
  user = stddev * jax.random.normal(key_u, (num_users, dim), jnp.float32)
  item = stddev * jax.random.normal(key_i, (num_items, dim), jnp.float32)
  return MFParams(user.at[:, 0].set(0.0), item.at[:, 0].set(0.0),
                  jnp.zeros((), jnp.float32))


def mf_logits(emb_u_BxD, emb_i_BxD, bias) -> jax.Array:
  """Eq. 2 on gathered rows: b + p_1 + q_1 + <p_[2..d], q_[2..d]>."""
  dot_B = jnp.sum(emb_u_BxD[..., 1:] * emb_i_BxD[..., 1:], axis=-1)
  return bias + emb_u_BxD[..., 0] + emb_i_BxD[..., 0] + dot_B


def mf_score(params: MFParams, users, items) -> jax.Array:
  """Eq. 2 for arrays of user and item ids of the same shape."""
  return mf_logits(params.user[users], params.item[items], params.bias)


def popularity_counts(train_items, num_items) -> np.ndarray:
  """Number of training interactions of each item: the popularity model."""
  return np.bincount(train_items, minlength=num_items).astype(np.float32)


def popularity_score(counts_I, users, items) -> jax.Array:
  """Popularity ignores the user: the score of an item is its count."""
  del users
  return counts_I[items]
