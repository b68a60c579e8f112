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
"""

import jax
import numpy as np

from dot_vs_learned import full_ranking
from dot_vs_learned import models
from dot_vs_learned import sampled_correction

CORRECTIONS = ("rescaled", "cls", "bv")


def candidates(data) -> int:
  """n of the corrections: the mean over users of the items each did not
  train on, rounded (NCF's negatives are drawn from those)."""
  seen = np.bincount(data.train_users, minlength=data.num_users)
  return int(round(float(np.mean(data.num_items - seen))))


def _evaluator(config, data):
  """full_ranking's evaluator of the held-out items at eval.full_ranking_ks."""
  return full_ranking.make_evaluator(
      data.num_items, data.train_users, data.train_items,
      np.arange(data.num_users), data.test_items,
      ks=tuple(config.eval.full_ranking_ks))


def make_full_ranking(config, data):
  """Returns params [seeds, ...] -> {"full/...": [seeds]}, or None when
  eval.full_ranking is off. Jitted, vmapped over the seeds."""
  if not config.eval.full_ranking:
    return None
  over_seeds = jax.jit(jax.vmap(_evaluator(config, data)))
  return lambda params: {f"full/{name}": value
                         for name, value in over_seeds(params).items()}


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
  ranks (0-based, [P, U])."""
  n, m = candidates(data), data.test_negatives.shape[1]
  per_seed = [sampled_correction.corrected_metrics(
      np.asarray(ranks), n, m, ks=(config.eval.k,), gamma=config.eval.gamma)
              for ranks in np.asarray(ranks_PxU)]
  return {name: np.array([seed[name] for seed in per_seed])
          for name in per_seed[0] if name.split("/")[0] in CORRECTIONS}
