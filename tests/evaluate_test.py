"""Tests of the NCF leave-one-out metrics on hand-built score matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import evaluate


def table_score(table, users, items):
  return table[users, items]


def test_candidate_mask_drops_test_item_and_repeats():
  mask = evaluate.candidate_mask(np.array([5, 0]),
                                 np.array([[5, 3, 3, 7], [1, 2, 1, 0]]))
  np.testing.assert_array_equal(
      mask, [[False, True, False, True], [True, True, False, False]])


def test_rank_counts_ties_above_the_positive():
  rank = evaluate.rank_of_positive(
      jnp.array([1.0, 1.0]), jnp.array([[2.0, 1.0, 0.5], [0.0, 0.0, 1.0]]),
      jnp.array([[True, True, True], [True, True, False]]))
  np.testing.assert_array_equal(rank, [2, 0])


def test_a_nan_score_of_the_held_out_item_ranks_last():
  rank = evaluate.rank_of_positive(
      jnp.array([jnp.nan, jnp.nan, 1.0]),
      jnp.array([[2.0, 1.0, 0.5], [jnp.nan] * 3, [jnp.nan, 0.0, 3.0]]),
      jnp.array([[True, True, True], [True, False, True], [True] * 3]))
  np.testing.assert_array_equal(rank, [3, 2, 1])
  hit, _ = evaluate.hit_and_ndcg(rank, 1)
  np.testing.assert_array_equal(hit, [0, 0, 0])


def test_hit_and_ndcg_exact_values():
  hit, ndcg = evaluate.hit_and_ndcg(jnp.array([0, 1, 9, 10]), 10)
  np.testing.assert_array_equal(hit, [1, 1, 1, 0])
  np.testing.assert_allclose(ndcg, [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0],
                             rtol=1e-6)


def test_sampled_metrics_on_hand_built_scores():
  # 3 users, 6 items, 3 negatives each; K = 2.
  table = jnp.array([
      [0.9, 0.1, 0.2, 0.3, 0.0, 0.0],  # item 0 first: rank 0.
      [0.5, 0.6, 0.4, 0.0, 0.0, 0.0],  # item 2: 0 and 1 above: rank 2.
      [0.0, 0.7, 0.0, 0.7, 0.1, 0.0],  # item 3 ties item 1: rank 1.
  ])
  test_items = jnp.array([0, 2, 3])
  negatives = jnp.array([[1, 2, 3], [0, 1, 5], [1, 4, 5]])
  mask = jnp.asarray(evaluate.candidate_mask(test_items, negatives))
  metrics = evaluate.sampled_metrics(table_score, table, test_items, negatives,
                                     mask, 2)
  np.testing.assert_allclose(metrics["hr"], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics["ndcg"], (1.0 + 1 / np.log2(3)) / 3,
                             rtol=1e-6)


def test_masked_duplicate_of_positive_does_not_count():
  table = jnp.array([[0.0, 1.0, 1.0]])
  test_items = jnp.array([1])
  negatives = jnp.array([[1, 2, 0]])  # item 1 is the test item itself.
  mask = jnp.asarray(evaluate.candidate_mask(test_items, negatives))
  metrics = evaluate.sampled_metrics(table_score, table, test_items, negatives,
                                     mask, 1)
  assert float(metrics["hr"]) == 0.0  # item 2 ties: ranks above.
  metrics = evaluate.sampled_metrics(table_score, table, test_items, negatives,
                                     mask, 2)
  np.testing.assert_allclose(metrics["ndcg"], 1 / np.log2(3), rtol=1e-6)


def test_constant_model_gets_no_hits_and_random_model_about_k_over_n():
  num_users, num_negatives = 2000, 99
  rng = np.random.default_rng(0)
  negatives = rng.integers(1, 1000, (num_users, num_negatives))
  test_items = np.zeros(num_users, np.int64)
  mask = jnp.asarray(evaluate.candidate_mask(test_items, negatives))
  constant = lambda params, users, items: jnp.zeros(items.shape)
  metrics = evaluate.sampled_metrics(constant, None, jnp.asarray(test_items),
                                     jnp.asarray(negatives), mask, 10)
  assert float(metrics["hr"]) == 0.0
  noise = jax.random.uniform(jax.random.key(0), (num_users, 1000))
  metrics = evaluate.sampled_metrics(table_score, noise,
                                     jnp.asarray(test_items),
                                     jnp.asarray(negatives), mask, 10)
  valid = np.asarray(mask).sum(axis=1) + 1
  assert abs(float(metrics["hr"]) - np.mean(10 / valid)) < 0.02


def test_vmaps_over_seeds():
  tables = jax.random.normal(jax.random.key(1), (4, 5, 7))
  test_items = jnp.array([0, 1, 2, 3, 4])
  negatives = jnp.array([[5, 6, 1]] * 5)
  mask = jnp.asarray(evaluate.candidate_mask(test_items, negatives))
  batched = jax.vmap(lambda t: evaluate.sampled_metrics(
      table_score, t, test_items, negatives, mask, 2))(tables)
  for seed in range(4):
    single = evaluate.sampled_metrics(table_score, tables[seed], test_items,
                                      negatives, mask, 2)
    assert float(batched["hr"][seed]) == pytest.approx(float(single["hr"]))
    assert float(batched["ndcg"][seed]) == pytest.approx(float(single["ndcg"]))
