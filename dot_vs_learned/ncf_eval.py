"""An NCF run's metrics beyond the sampled ones: full ranking and corrections.

Every evaluation of a run records three views of the same model (Krichene
and Rendle, KDD 2020):
  * sampled: the NCF protocol, the held-out item against the user's m
    sampled negatives (evaluate.py): "hr@K", "ndcg@K";
  * corrected: estimates of the full-ranking metrics from those sampled
    ranks alone (sampled_correction.py): "rescaled/...", "cls/...",
    "bv/..." (hr@K, ndcg@K, mrr), with n = the mean over users of the items
    they did not train on (the held-out item included);
  * full: the held-out item against every item the user did not train on
    (full_ranking.py): "full/hr@K", "full/recall@K", "full/ndcg@K",
    "full/mrr", for K in eval.full_ranking_ks; eval.full_ranking=False turns
    it off for very large catalogues.
Item lists (item_lists.ListData: several test items per user, no
negatives) have the full ranking only, and are judged by its recall@k.
"""

import jax
import numpy as np

from dot_vs_learned import evaluate
from dot_vs_learned import full_ranking
from dot_vs_learned import models
from dot_vs_learned import sampled_correction

CORRECTIONS = ("rescaled", "cls", "bv")


def selection(config, data) -> tuple[str, str]:
  """The record names a run is judged by (the second breaks ties): sampled
  HR@k and NDCG@k on NCF data, full-ranking recall@k and NDCG@k on item
  lists (k = eval.k)."""
  k = config.eval.k
  if evaluate.has_negatives(data):
    return f"hr@{k}", f"ndcg@{k}"
  return f"full/recall@{k}", f"full/ndcg@{k}"


def test_pairs(data) -> tuple[np.ndarray, np.ndarray]:
  """(users, items) of the test pairs: each user's held-out item on NCF
  data, the test file's pairs of item lists."""
  if evaluate.has_negatives(data):
    return np.arange(data.num_users), data.test_items
  return data.test_users, data.test_items


def num_candidates(data) -> int:
  """Items ranked per test pair: the held-out one and its sampled negatives
  on NCF data, the catalogue on item lists."""
  if evaluate.has_negatives(data):
    return 1 + data.test_negatives.shape[1]
  return data.num_items


def candidates(data) -> int:
  """n of the corrections: the mean over users of the items each did not
  train on, rounded (NCF's negatives are drawn from those)."""
  seen = np.bincount(data.train_users, minlength=data.num_users)
  return int(round(float(np.mean(data.num_items - seen))))


def _evaluator(config, data):
  """full_ranking's evaluator of the test pairs at eval.full_ranking_ks."""
  return full_ranking.make_evaluator(
      data.num_items, data.train_users, data.train_items, *test_pairs(data),
      ks=tuple(config.eval.full_ranking_ks))


def full_ranking_fn(config, data):
  """params (one seed) -> {"full/...": scalar}: traceable, for programs
  that evaluate inside (vmap or lax.map it)."""
  evaluator = _evaluator(config, data)
  return lambda params: {f"full/{name}": value
                         for name, value in evaluator(params).items()}


def make_full_ranking(config, data):
  """Returns params [seeds, ...] -> {"full/...": [seeds]}, or None when
  eval.full_ranking is off. Jitted, vmapped over the seeds."""
  if not config.eval.full_ranking:
    return None
  return jax.jit(jax.vmap(full_ranking_fn(config, data)))


def popularity_full_ranking(config, data) -> dict:
  """Full-ranking metrics of popularity (one "seed"), or {} when off."""
  if not config.eval.full_ranking:
    return {}
  evaluator = _evaluator(config, data)
  counts = models.popularity_counts(data.train_items, data.num_items)
  model = full_ranking.popularity_model(counts, data.num_users)
  return {f"full/{name}": np.asarray(value)[None]
          for name, value in evaluator(model).items()}


def corrected(ranks_PxU, config, data) -> dict:
  """{"rescaled/hr@K": [P], ...}: each correction of each seed's sampled
  ranks (0-based, [P, U]); {} without them (item lists: None)."""
  if ranks_PxU is None:
    return {}
  n, m = candidates(data), data.test_negatives.shape[1]
  per_seed = [sampled_correction.corrected_metrics(
      np.asarray(ranks), n, m, ks=(config.eval.k,), gamma=config.eval.gamma)
              for ranks in np.asarray(ranks_PxU)]
  return {name: np.array([seed[name] for seed in per_seed])
          for name in per_seed[0] if name.split("/")[0] in CORRECTIONS}
