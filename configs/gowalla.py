"""The LightGCN split of Gowalla (He et al. 2020) under full ranking.

python -m dot_vs_learned.main --config=configs/gowalla.py --config.data.dir=DIR --workdir=W
DIR holds train.txt and test.txt (`user item item ...`; item_lists.py). Runs
are judged by Recall@20 and NDCG@20 over every item the user has no
training pair with, as published for this split (also @10). There are no
sampled negatives, so no sampled or corrected metrics.
--config=configs/gowalla.py:MODEL for popularity, ials, ease, gmf, mlp,
neumf (the last three with NCF's recipe). MF and iALS are at d = 64, the
published rows' embedding size.
"""

from dot_vs_learned import ncf_config


def get_config(model="mf"):
  config = ncf_config.default_config()
  config.data.update(name="gowalla", format="lists")
  config.model.dim = 64
  config.eval.update(k=20, full_ranking_ks=(10, 20))
  # App. A.1's SGD with sampled negatives; ML-1M's App. A.2 values until
  # tuned on Gowalla's tuning split.
  config.train.update(learning_rate=0.002, reg=0.005, num_negatives=8,
                      epochs=256)
  if model == "ials":
    config.model.name = "ials"
    config.train.update(reg=0.007, epochs=16, init_stddev=0.1)
    config.ials.update(alpha0=0.3, solver="cg")
    config.eval.every = 4
  elif model == "ease":
    config.model.name, config.train.reg = "ease", 1000.0
  elif model == "popularity":
    config.model.name = "popularity"
  elif model != "mf":  # gmf, mlp, neumf: NCF's own recipe.
    ncf_config.use_ncf_recipe(config, model)
  return config
