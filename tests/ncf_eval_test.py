"""Tests of an NCF run's full-ranking and corrected metrics (ncf_eval.py)."""

import numpy as np
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import evaluate
from dot_vs_learned import models
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import ncf_eval
from dot_vs_learned import results
from dot_vs_learned import sampled_correction


def _config(name="mf"):
  config = ncf_config.default_config()
  config.data.update(num_users=120, num_items=200)
  config.model.update(name=name, dim=4)
  config.train.update(epochs=2, batch_size=256, num_seeds=2, learning_rate=0.05)
  config.eval.update(every=2, full_ranking_ks=(5, 10))
  return config


def _mf_scores(flat, seed):
  user, item = flat["mf/user"][seed], flat["mf/item"][seed]
  return (user[:, :1] + item[:, 0] + user[:, 1:] @ item[:, 1:].T +
          flat["mf/bias"][seed]).astype(np.float64)


def test_mf_run_records_full_and_corrected_metrics_as_numpy_computes(
    tmp_path):
  config = _config()
  final = ncf.run(config, tmp_path)["final"]
  data = datasets.load_dataset(config.data)
  flat = results.load_params(tmp_path)
  n = ncf_eval.candidates(data)
  seen = np.bincount(data.train_users, minlength=data.num_users)
  assert n == round(np.mean(data.num_items - seen))
  mask = evaluate.candidate_mask(data.test_items, data.test_negatives)
  users = np.arange(data.num_users)
  for seed in range(2):
    scores = _mf_scores(flat, seed)
    positive = scores[users, data.test_items]
    trained = np.zeros_like(scores, bool)
    trained[data.train_users, data.train_items] = True
    above = (scores >= positive[:, None]) & ~trained
    full_rank = above.sum(axis=1) - 1  # 0-based, ties against the item
    for k in (5, 10):
      want = np.mean(full_rank < k)
      assert final[f"full/hr@{k}"]["per_seed"][seed] == pytest.approx(want)
      assert final[f"full/recall@{k}"]["per_seed"][seed] == pytest.approx(
          want)
    assert final["full/mrr"]["per_seed"][seed] == pytest.approx(
        np.mean(1 / (full_rank + 1)), rel=1e-5)
    sampled = ((scores[users[:, None], data.test_negatives] >=
                positive[:, None]) & mask).sum(axis=1)
    want = sampled_correction.corrected_metrics(sampled, n, 99, ks=(10,))
    for name in ("rescaled/hr@10", "bv/ndcg@10", "cls/mrr"):
      assert final[name]["per_seed"][seed] == pytest.approx(want[name])


def test_popularity_and_learned_models_get_them_too(tmp_path):
  config = _config("popularity")
  pop = ncf.run(config, tmp_path / "pop")["final"]
  data = datasets.load_dataset(config.data)
  counts = models.popularity_counts(data.train_items, data.num_items)
  trained = np.zeros((data.num_users, data.num_items), bool)
  trained[data.train_users, data.train_items] = True
  test = counts[data.test_items]
  rank = ((counts[None, :] >= test[:, None]) & ~trained).sum(axis=1) - 1
  assert pop["full/hr@10"]["mean"] == pytest.approx(np.mean(rank < 10))
  config = _config("gmf")
  config.train.optimizer = "adam"
  config.eval.full_ranking = False
  gmf = ncf.run(config, tmp_path / "gmf")["final"]
  assert not any(name.startswith("full/") for name in gmf)
  assert 0 <= gmf["bv/hr@10"]["mean"] <= 1
