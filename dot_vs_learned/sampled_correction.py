"""Corrected sampled metrics (Krichene and Rendle, KDD 2020).

The NCF protocol ranks a user's held-out item against m sampled negatives.
Its sampled rank x (0-based: the sampled negatives scoring at least as high)
depends on its full rank r (1-based: 1 + the user's n - 1 non-interacted
items scoring at least as high) through the sampling alone:
  without replacement (as NCF draws): x | r ~ Hypergeometric(n - 1, r - 1, m),
    P(x | r) = C(r - 1, x) C(n - r, m - x) / C(n - 1, m);
  with replacement (the paper's examples): x | r ~ Binomial(m, (r-1)/(n-1)).
A metric of one relevant item is a function M(r) of its full rank:
  hr@K (= recall@K) [r <= K];  ndcg@K [r <= K] / log2(r + 1);  ap (= mrr) 1/r.
The naive sampled metric is M(x + 1); the paper shows that its mean can
order models unlike the full metric, even in expectation.

Every estimator is a vector c of m + 1 values, one per sampled rank x; its
estimate of a dataset's metric is the mean of c[x] over the users:
  sampled:   c_x = M(x + 1).
  rescaled:  c_x = M(1 + x (n - 1) / m), M at the full rank whose expected
             sampled rank is x (E[x | r] = m (r - 1) / (n - 1) in both
             samplings): an unbiased estimate of the rank, not of M.
  cls:       the least-squares correction with minimal bias,
               c = argmin_c sum_r w_r (E[c_x | r] - M(r))^2
                 = argmin_c |W^½ (A c - M)|^2,   A[r, x] = P(x | r).
             For m ~ 100 the problem is nearly singular (singular values of
             W^½ A down to 1e-12 of the largest at n = 10^4), so its exact
             minimizer is not reproducible; a ridge of 1e-6 times the largest
             singular value fixes it, raising the bias by ~2% (recall@10, n =
             10^4). c still swings in the thousands: CLS has a large variance.
  bv:        the bias-variance trade-off, for gamma in (0, 1]:
               c = argmin_c sum_r w_r [(E[c_x | r] - M(r))^2
                                       + gamma Var(c_x | r)]
                 = ((1 - gamma) A^T W A + gamma diag(A^T w))^-1 A^T W M,
             as Var(c_x | r) = (A c^2)_r - (A c)_r^2. gamma -> 0 tends to CLS;
             gamma = 1 minimizes the mean squared error, giving the posterior
             mean E_w[M(r) | x]. The paper found gamma = 0.1 to work well.
Weighting over full ranks (the w of CLS and BV): uniform, w_r = 1/n for
r = 1..n, nothing being known of the full ranks; `weights` replaces it (e.g.
the full ranks of a previous run).
"""

import functools
import math

import numpy as np

METRICS = ("hr", "ndcg", "ap")
METHODS = ("sampled", "rescaled", "cls", "bv")
_ROWS = 8192  # full ranks per block of the pmf: memory O(_ROWS * m)


def metric_of_rank(name: str, ranks, k=None) -> np.ndarray:
  """M(r) of 1-based full ranks (floats allowed): hr@k, ndcg@k or ap (1/r)."""
  ranks = np.asarray(ranks, np.float64)
  if name == "ap":
    return 1.0 / ranks
  if name not in METRICS:
    raise ValueError(f"sampled_correction: metric {name!r} is not one of "
                     f"{METRICS}")
  if k is None or int(k) != k or k < 1:
    raise ValueError(f"sampled_correction: {name} needs a cut-off k >= 1, "
                     f"got {k!r}")
  hit = ranks <= k
  if name == "hr":
    return hit.astype(np.float64)
  return np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)


@functools.lru_cache(maxsize=8)
def _log_factorials(count: int) -> np.ndarray:
  """log(i!) for i = 0..count; cached, as every block of ranks reuses it."""
  out = np.array([math.lgamma(i + 1.0) for i in range(count + 1)])
  out.flags.writeable = False
  return out


def sampled_rank_pmf(n: int, m: int, ranks=None, replace=False) -> np.ndarray:
  """P(x | r): rows the 1-based full ranks `ranks` (default 1..n), columns
  the sampled ranks x = 0..m."""
  _check_sizes(n, m, replace)
  r = (np.arange(1, n + 1) if ranks is None else np.asarray(ranks))[:, None]
  if np.any((r < 1) | (r > n)):
    raise ValueError(f"sampled_correction: full ranks must be in 1..{n}")
  x = np.arange(m + 1)[None, :]
  if replace:
    lf = _log_factorials(m)
    p = (r - 1) / (n - 1)
    with np.errstate(divide="ignore"):
      log_p = np.where(x > 0, x * np.log(np.where(p > 0, p, 1.0)), 0.0)
      log_q = np.where(x < m, (m - x) * np.log(np.where(p < 1, 1 - p, 1.0)),
                       0.0)
    out = np.exp(lf[m] - lf[x] - lf[m - x] + log_p + log_q)
    # p = 0 (r = 1) puts all mass on x = 0, p = 1 (r = n) on x = m.
    out = np.where((p == 0) & (x > 0), 0.0, out)
    return np.where((p == 1) & (x < m), 0.0, out)
  lf = _log_factorials(n)
  above, below = r - 1, n - r  # non-interacted items above / below the item
  # log C(above, x) + log C(below, m - x) - log C(n - 1, m); the factors of
  # one row or one column alone are gathered once.
  rest_above, rest_below = above - x, below - (m - x)
  ok = (rest_above >= 0) & (rest_below >= 0)
  log_p = ((lf[above] + lf[below]) - (lf[x] + lf[m - x])
           - lf[np.maximum(rest_above, 0)] - lf[np.maximum(rest_below, 0)]
           - (lf[n - 1] - lf[m] - lf[n - 1 - m]))
  return np.where(ok, np.exp(np.where(ok, log_p, 0.0)), 0.0)


def _check_sizes(n, m, replace):
  if int(m) != m or m < 1:
    raise ValueError(f"sampled_correction: m (sampled negatives) must be an "
                     f"integer >= 1, got {m!r}")
  if int(n) != n or n < 2 or (not replace and m > n - 1):
    raise ValueError(f"sampled_correction: n (candidates) must be an integer "
                     f">= 2 and >= m + 1 without replacement; got n={n!r}, "
                     f"m={m!r}")


def estimators(metrics, n: int, m: int, gamma=0.1, replace=False,
               weights=None, ridge=1e-6) -> dict:
  """The values c[x], x = 0..m, of every estimator of several metrics.

  Args:
    metrics: (name, k) pairs; "hr" and "ndcg" need k, "ap" ignores it.
    n: candidates per user (non-interacted items + the held-out one).
    m: sampled negatives per user.
    gamma: BV's trade-off, in (0, 1].
    replace: negatives drawn with replacement (binomial) instead of without.
    weights: w over full ranks 1..n for CLS and BV; default uniform.
    ridge: CLS's damping, relative to the largest singular value of W^½ A.

  Returns:
    {(name, k): {"sampled": c, "rescaled": c, "cls": c, "bv": c}}. One pass
    over the full ranks serves every metric; with the default weights the
    result is cached (read-only arrays), as each evaluation of a run asks
    for the same (n, m).
  """
  _check_sizes(n, m, replace)
  metrics = tuple((name, None if name == "ap" else k) for name, k in metrics)
  for name, k in metrics:
    metric_of_rank(name, 1.0, k)  # checks name and k
  if not 0 < gamma <= 1:
    raise ValueError(f"sampled_correction: gamma must be in (0, 1], got "
                     f"{gamma!r}")
  if weights is None:
    return _cached_estimators(metrics, int(n), int(m), float(gamma),
                              bool(replace), ridge)
  weights = np.asarray(weights, np.float64)
  if weights.shape != (n,) or np.any(weights < 0) or not weights.sum() > 0:
    raise ValueError(f"sampled_correction: weights must be {n} nonnegative "
                     "numbers, not all 0")
  return _solve(metrics, n, m, gamma, replace, weights, ridge)


@functools.lru_cache(maxsize=32)
def _cached_estimators(metrics, n, m, gamma, replace, ridge):
  out = _solve(metrics, n, m, gamma, replace, np.full(n, 1.0 / n), ridge)
  for values in out.values():
    for c in values.values():
      c.flags.writeable = False
  return out


def _solve(metrics, n, m, gamma, replace, w, ridge):
  """The four estimators of each metric (module docstring)."""
  # CLS and BV, from blocks of full ranks: A [n, m + 1] is never held whole.
  # BV needs A^T W A, A^T W M and A^T w; CLS the R factor of the QR of
  # W^½ [A, M_1, M_2, ..] (least squares through the Gram matrix would square
  # a condition number of ~1e11).
  gram, mass = np.zeros((m + 1, m + 1)), np.zeros(m + 1)
  rhs = np.zeros((m + 1, len(metrics)))
  tri = np.zeros((0, m + 1 + len(metrics)))
  for start in range(0, n, _ROWS):
    ranks = np.arange(start + 1, min(start + _ROWS, n) + 1)
    a = sampled_rank_pmf(n, m, ranks, replace)
    # Below 1e-150 a probability changes nothing here, and products of such
    # values are subnormal floats, about 2x slower in the Gram matrix.
    a[a < 1e-150] = 0.0
    targets = np.stack([metric_of_rank(name, ranks, k)
                        for name, k in metrics], axis=1)
    weighted = a * w[ranks - 1, None]
    gram += weighted.T @ a
    rhs += weighted.T @ targets
    mass += weighted.sum(axis=0)
    root = np.sqrt(w[ranks - 1, None])
    tri = np.linalg.qr(np.concatenate([tri, root * np.hstack([a, targets])]),
                       mode="r")
  # |W^½ (A c - M_j)| = |R_A c - R_j| + const. With a ridge of `ridge` times
  # the largest singular value s_1: min |R_A c - R_j|^2 + (ridge s_1 |c|)^2.
  r_a, r_m = tri[:m + 1, :m + 1], tri[:m + 1, m + 1:]
  damping = ridge * np.linalg.norm(r_a, 2) * np.eye(m + 1)
  cls = np.linalg.lstsq(np.concatenate([r_a, damping]),
                        np.concatenate([r_m, np.zeros_like(r_m)]))[0]
  bv = np.linalg.solve((1 - gamma) * gram + gamma * np.diag(mass), rhs)
  return {(name, k): {"sampled": _direct(name, k, n, m, "sampled"),
                      "rescaled": _direct(name, k, n, m, "rescaled"),
                      "cls": cls[:, j], "bv": bv[:, j]}
          for j, (name, k) in enumerate(metrics)}


def _direct(name, k, n, m, method):
  """The sampled and rescaled estimators: M at a rank made from x."""
  x = np.arange(m + 1)
  return metric_of_rank(name, (x + 1.0) if method == "sampled" else
                        1.0 + x * (n - 1) / m, k)


def estimator(name: str, k, n: int, m: int, method: str, gamma=0.1,
              replace=False, weights=None, ridge=1e-6) -> np.ndarray:
  """The values c[x], x = 0..m, of one estimator (arguments: estimators)."""
  if method not in METHODS:
    raise ValueError(f"sampled_correction: method {method!r} is not one of "
                     f"{METHODS}")
  _check_sizes(n, m, replace)
  if method in ("sampled", "rescaled"):
    return _direct(name, k, n, m, method)
  metric = (name, None if name == "ap" else k)
  return estimators([metric], n, m, gamma, replace, weights, ridge)[metric][
      method]


def expected_values(values, full_ranks, n: int, m: int,
                    replace=False) -> np.ndarray:
  """E[values[x] | r] for each 1-based full rank r: what an estimator with
  these values reports on average for an item at rank r."""
  return sampled_rank_pmf(n, m, full_ranks, replace) @ np.asarray(values)


def estimate(sampled_ranks, values) -> float:
  """Mean of an estimator's values over users' 0-based sampled ranks."""
  values = np.asarray(values)
  ranks = np.asarray(sampled_ranks)
  if not np.issubdtype(ranks.dtype, np.integer) or np.any(
      (ranks < 0) | (ranks >= len(values))):
    raise ValueError(f"sampled_correction: sampled ranks must be integers "
                     f"in 0..{len(values) - 1}")
  return float(np.mean(values[ranks]))


def corrected_metrics(sampled_ranks, n: int, m: int, ks=(10,), gamma=0.1,
                      replace=False) -> dict[str, float]:
  """Every estimator of hr@K, ndcg@K (K in ks) and mrr from sampled ranks.

  Returns {"sampled/hr@10": ..., "rescaled/hr@10": ..., "cls/hr@10": ...,
  "bv/hr@10": ..., ..., "bv/mrr": ...}; "mrr" is the metric "ap" (1/r).
  """
  labels = {("ap", None): "mrr"}
  for k in ks:
    labels.update({("hr", k): f"hr@{k}", ("ndcg", k): f"ndcg@{k}"})
  values = estimators(list(labels), n, m, gamma, replace)
  return {f"{method}/{label}": estimate(sampled_ranks, values[metric][method])
          for metric, label in labels.items() for method in METHODS}
