"""Leave-one-out evaluation of the NCF protocol (He et al. 2017, §4.1).

Each user's held-out item is ranked against that user's sampled negatives;
HR@K says whether it lands in the top K, NDCG@K = 1 / log2(rank + 1) with the
rank counted from 1. Ties are broken pessimistically: a negative scoring equal
to the held-out item ranks above it, so a constant model gets HR@10 of about
K / (number of candidates), never 1.

The NCF evaluator scores candidates through a dict keyed by item id, so a
negative equal to the held-out item, or repeated in the list, counts once at
most. `candidate_mask` reproduces that: such entries are masked out. The
published ML-1M file has 156 users whose held-out item is among their negatives.

Item-list datasets (item_lists.ListData) have no sampled negatives: they are
evaluated by full ranking alone (ncf_eval.py), and test_arrays is empty.
"""

import jax
import jax.numpy as jnp
import numpy as np


def candidate_mask(test_items_U, negatives_UxN) -> np.ndarray:
  """True where a negative counts: not the held-out item, first occurrence."""
  negatives_UxN = np.asarray(negatives_UxN)
  order_UxN = np.argsort(negatives_UxN, axis=1, kind="stable")
  sorted_UxN = np.take_along_axis(negatives_UxN, order_UxN, axis=1)
  first_UxN = np.ones_like(sorted_UxN, dtype=bool)
  first_UxN[:, 1:] = sorted_UxN[:, 1:] != sorted_UxN[:, :-1]
  mask_UxN = np.empty_like(first_UxN)
  np.put_along_axis(mask_UxN, order_UxN, first_UxN, axis=1)
  return mask_UxN & (negatives_UxN != np.asarray(test_items_U)[:, None])


def rank_of_positive(pos_U, neg_UxN, mask_UxN) -> jax.Array:
  """0-based rank of the held-out item: counted negatives scoring >= it.
  A NaN score of it (a diverged model) ranks last, as in full ranking: NaN
  >= s is False, which would rank it first."""
  above_UxN = (neg_UxN >= pos_U[:, None]) & mask_UxN
  return jnp.where(jnp.isnan(pos_U), jnp.sum(mask_UxN, axis=1),
                   jnp.sum(above_UxN, axis=1))


def hit_and_ndcg(rank_U, k) -> tuple[jax.Array, jax.Array]:
  """Per-user HR@k and NDCG@k from 0-based ranks."""
  hit_U = rank_U < k
  ndcg_U = jnp.where(hit_U, 1.0 / jnp.log2(rank_U + 2.0), 0.0)
  return hit_U.astype(jnp.float32), ndcg_U


def sampled_metrics(score_fn, params, test_items_U, negatives_UxN, mask_UxN,
                    k) -> dict[str, jax.Array]:
  """Mean HR@k and NDCG@k of `score_fn(params, users, items)`; vmappable.

  Args:
    score_fn: maps (params, users [U, C], items [U, C]) to scores [U, C].
    params: the model parameters (one seed; vmap over a leading axis).
    test_items_U: each user's held-out item.
    negatives_UxN: each user's sampled negatives.
    mask_UxN: `candidate_mask(test_items_U, negatives_UxN)`.
    k: the cut-off K.

  Returns:
    {"hr": HR@k, "ndcg": NDCG@k}, means over users, and "rank": each user's
    0-based sampled rank (for the corrected metrics: ncf_eval.py).
  """
  num_users = test_items_U.shape[0]
  items_UxC = jnp.concatenate([test_items_U[:, None], negatives_UxN], axis=1)
  users_UxC = jnp.broadcast_to(jnp.arange(num_users)[:, None], items_UxC.shape)
  scores_UxC = score_fn(params, users_UxC, items_UxC)
  rank_U = rank_of_positive(scores_UxC[:, 0], scores_UxC[:, 1:], mask_UxN)
  hit_U, ndcg_U = hit_and_ndcg(rank_U, k)
  return {"hr": jnp.mean(hit_U), "ndcg": jnp.mean(ndcg_U),
          "rank": rank_U.astype(jnp.int32)}


def has_negatives(data) -> bool:
  """Whether `data` has sampled negatives (data.NCFData), not item lists."""
  return hasattr(data, "test_negatives")


def test_arrays(data) -> tuple:
  """(held-out items [U], negatives [U, N], candidate mask [U, N]) of the
  sampled protocol, numpy; () for data without negatives."""
  if not has_negatives(data):
    return ()
  return (data.test_items, data.test_negatives,
          candidate_mask(data.test_items, data.test_negatives))


def metrics_of(score_fn, params, arrays, k) -> dict[str, jax.Array]:
  """sampled_metrics on test_arrays(data) (as arrays); {} when empty."""
  return sampled_metrics(score_fn, params, *arrays, k) if arrays else {}
