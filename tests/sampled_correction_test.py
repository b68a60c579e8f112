"""Tests of sampled_correction.py: the sampling distribution by enumeration,
each estimator's expectation, and the toy example of Krichene and Rendle."""

import itertools

import numpy as np
import pytest

from dot_vs_learned import sampled_correction as sc

N, M = 8, 3  # small enough to enumerate every sample


def enumerated_pmf(n, m, replace):
  """P(x | r) by listing every draw of m of the n - 1 other items; item j
  scores above the held-out item iff j < r - 1."""
  draws = (itertools.product(range(n - 1), repeat=m) if replace else
           itertools.combinations(range(n - 1), m))
  draws = np.array(list(draws))
  pmf = np.zeros((n, m + 1))
  for r in range(1, n + 1):
    counts = np.sum(draws < r - 1, axis=1)
    pmf[r - 1] = np.bincount(counts, minlength=m + 1) / len(draws)
  return pmf


@pytest.mark.parametrize("replace", [False, True])
def test_pmf_equals_enumeration(replace):
  np.testing.assert_allclose(sc.sampled_rank_pmf(N, M, replace=replace),
                             enumerated_pmf(N, M, replace), atol=1e-12)


def test_pmf_of_a_large_catalogue_is_a_distribution_with_the_right_mean():
  n, m = 20_000, 99
  ranks = np.array([1, 2, 500, 10_000, 19_999, 20_000])
  for replace in (False, True):
    pmf = sc.sampled_rank_pmf(n, m, ranks, replace)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(pmf @ np.arange(m + 1),
                               m * (ranks - 1) / (n - 1), rtol=1e-9)
  # Without replacement the variance shrinks by (N - m) / (N - 1), N = n - 1.
  p = (ranks - 1) / (n - 1)
  pmf = sc.sampled_rank_pmf(n, m, ranks)
  mean = pmf @ np.arange(m + 1)
  var = np.sum(pmf * (np.arange(m + 1) - mean[:, None]) ** 2, axis=1)
  np.testing.assert_allclose(var, m * p * (1 - p) * (n - 1 - m) / (n - 2),
                             rtol=1e-7, atol=1e-12)


def brute_force_moments(values, replace):
  """E[c_x | r] and Var(c_x | r) over every draw, for r = 1..N."""
  pmf = enumerated_pmf(N, M, replace)
  mean = pmf @ values
  return mean, pmf @ values ** 2 - mean ** 2


@pytest.mark.parametrize("replace", [False, True])
@pytest.mark.parametrize("metric", [("hr", 2), ("ndcg", 3), ("ap", None)])
def test_estimators_against_brute_force(metric, replace):
  name, k = metric
  full = sc.metric_of_rank(name, np.arange(1, N + 1), k)
  values = sc.estimators([metric], N, M, gamma=0.1, replace=replace)[metric]
  for method, c in values.items():  # expected_values is the exact mean
    np.testing.assert_allclose(
        sc.expected_values(c, np.arange(1, N + 1), N, M, replace),
        brute_force_moments(c, replace)[0], atol=1e-12, err_msg=method)
  # rescaled: the rank estimate 1 + x (N - 1) / M is unbiased for r.
  rank_hat = 1 + np.arange(M + 1) * (N - 1) / M
  np.testing.assert_allclose(brute_force_moments(rank_hat, replace)[0],
                             np.arange(1, N + 1), atol=1e-12)

  def objective(c, gamma):  # uniform weights over r = 1..N
    mean, var = brute_force_moments(c, replace)
    return np.mean((mean - full) ** 2 + gamma * var)

  # CLS and BV minimize their (convex quadratic) objectives.
  steps = 1e-3 * np.eye(M + 1)
  for method, gamma in (("cls", 0.0), ("bv", 0.1)):
    c = values[method]
    best = objective(c, gamma)
    for step in np.concatenate([steps, -steps]):
      assert objective(c + step, gamma) >= best - 1e-13, method
  # Four sampled ranks, four constraints fewer than eight ranks: CLS cannot
  # remove the bias, but has less of it than the naive sampled metric.
  assert objective(values["cls"], 0) < objective(values["sampled"], 0)
  # gamma = 1 minimizes the mean squared error: the posterior mean of M.
  pmf = enumerated_pmf(N, M, replace)
  posterior = (pmf * full[:, None]).sum(0) / pmf.sum(0)
  np.testing.assert_allclose(sc.estimator(name, k, N, M, "bv", gamma=1.0,
                                          replace=replace), posterior,
                             atol=1e-12)


def test_monte_carlo_draws_without_replacement_match_the_expectation():
  n, m, r = 400, 20, 37
  rng = np.random.default_rng(0)
  draws = np.array([rng.choice(n - 1, m, replace=False) for _ in range(4000)])
  sampled_ranks = np.sum(draws < r - 1, axis=1)  # 36 items above the item
  for method in sc.METHODS:
    c = sc.estimator("ndcg", 10, n, m, method)
    want = sc.expected_values(c, [r], n, m)[0]
    spread = np.std(c[sampled_ranks]) / np.sqrt(len(draws))
    assert abs(sc.estimate(sampled_ranks, c) - want) < 4 * spread + 1e-12


# Krichene and Rendle (KDD 2020), Figure 1: n = 10,000 items, m = 99 sampled
# negatives, 1-based full ranks of five relevant items per recommender.
TOY = {"A": [100] * 5, "B": [40, 40, 8437, 9266, 4482],
       "C": [212, 2, 743, 5342, 1548]}


TOY_METRICS = [("hr", 10), ("ndcg", 10), ("ap", None)]


def toy_expectations(name, k, method, replace):
  # One solve for the three metrics (cached): the tests ask for each.
  c = sc.estimators(TOY_METRICS, 10_000, 99, replace=replace)[(name, k)][
      method]
  return {model: float(np.mean(sc.expected_values(c, ranks, 10_000, 99,
                                                  replace)))
          for model, ranks in TOY.items()}


def test_toy_example_sampled_metrics_as_published():
  full = {model: np.mean(sc.metric_of_rank("hr", ranks, 10))
          for model, ranks in TOY.items()}
  assert full == {"A": 0.0, "B": 0.0, "C": 0.2}
  recall = toy_expectations("hr", 10, "sampled", replace=True)
  np.testing.assert_allclose([recall[m] for m in "ABC"], [1.0, 0.4, 0.569],
                             atol=5e-4)
  ap = toy_expectations("ap", None, "sampled", replace=True)
  np.testing.assert_allclose([ap[m] for m in "ABC"], [0.6366, 0.3407, 0.3262],
                             atol=5e-5)
  # Without replacement (as NCF samples) it moves by less than 0.001.
  for name, k, with_replacement in (("hr", 10, recall), ("ap", None, ap)):
    without = toy_expectations(name, k, "sampled", replace=False)
    for model in "ABC":
      assert abs(without[model] - with_replacement[model]) < 1e-3


def test_toy_example_orders_under_each_estimator():
  """Which estimators order A, B, C as the full ranking does, in expectation.

  The paper shows the naive sampled metrics on this example (A first where
  the full ranking puts C first); the corrections' values are this module's
  own. Expected values, negatives drawn without replacement:
    hr@10  full C .200 > A = B = 0;  sampled A 1 > C .570 > B .400;
           rescaled A .372 > B .271 > C .222;  cls C .233 > A .011 > B -.022;
           bv(.1) B .047 > C .044 > A .030.
    ap     full C .101 > B .0101 > A .0100;  sampled A .636 > B .341 > C .326;
           rescaled A .376 > B .272 > C .224;  cls C .093 > A .010 > B .002;
           bv(.1) B .023 > A .022 > C .021.
  Only CLS ranks C first, as the full metrics do; BV at gamma = 0.1 shrinks
  the estimates of five users to almost one value.
  """
  for name, k in TOY_METRICS:
    full = {model: np.mean(sc.metric_of_rank(name, ranks, k))
            for model, ranks in TOY.items()}
    sampled = toy_expectations(name, k, "sampled", replace=False)
    cls = toy_expectations(name, k, "cls", replace=False)
    bv = toy_expectations(name, k, "bv", replace=False)
    rescaled = toy_expectations(name, k, "rescaled", replace=False)
    assert max(full, key=full.get) == "C"
    assert max(sampled, key=sampled.get) == "A"
    assert max(rescaled, key=rescaled.get) == "A"
    assert max(cls, key=cls.get) == "C"
    assert max(bv, key=bv.get) != "C"
    for model in "ABC":  # the corrections remove most of the bias
      error = abs(sampled[model] - full[model])
      assert error > 0.2
      assert abs(cls[model] - full[model]) < 0.05
      assert abs(bv[model] - full[model]) < error / 2


def test_corrected_metrics_from_sampled_ranks():
  ranks = np.array([0, 0, 1, 5, 40, 99])
  n, m = 500, 99
  got = sc.corrected_metrics(ranks, n, m, ks=(1, 10), gamma=0.1)
  assert len(got) == 4 * 5
  np.testing.assert_allclose(got["sampled/hr@10"], 4 / 6)
  np.testing.assert_allclose(got["sampled/mrr"],
                             np.mean(1 / (ranks + 1.0)))
  np.testing.assert_allclose(got["sampled/ndcg@1"], 2 / 6)
  # rescaled: full rank estimates 1, 1, 6.04, 26.2, 202.6, 500.
  rank_hat = 1 + ranks * (n - 1) / m
  np.testing.assert_allclose(got["rescaled/hr@10"], 3 / 6)
  np.testing.assert_allclose(got["rescaled/mrr"], np.mean(1 / rank_hat))
  for method in ("cls", "bv"):
    c = sc.estimator("ndcg", 10, n, m, method)
    np.testing.assert_allclose(got[f"{method}/ndcg@10"], np.mean(c[ranks]))


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="m must be at most|n \\(candidates\\)"):
    sc.estimators([("hr", 10)], 50, 99)
  with pytest.raises(ValueError, match="gamma must be in"):
    sc.estimators([("hr", 10)], 500, 99, gamma=0.0)
  with pytest.raises(ValueError, match="needs a cut-off"):
    sc.estimators([("ndcg", None)], 500, 99)
  with pytest.raises(ValueError, match="not one of"):
    sc.estimator("auc", None, 500, 99, "bv")
  with pytest.raises(ValueError, match="sampled ranks must be integers"):
    sc.estimate(np.array([0, 100]), np.zeros(100))
  with pytest.raises(ValueError, match="weights must be 500"):
    sc.estimators([("hr", 10)], 500, 99, weights=np.ones(3))
