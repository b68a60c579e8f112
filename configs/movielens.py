"""MF with biases on the NCF split of MovieLens-1M, App. A.2 hyperparameters.

python -m dot_vs_learned.main --config=configs/movielens.py --workdir=/tmp/dvl_ml1m
Learned similarities with NCF's recipe: --config=configs/movielens.py:gmf (mlp, neumf,
neumf_pretrained).
Local NCF files: add --config.data.dir=/path/to/folder/with/ml-1m.*
"""

from dot_vs_learned import ncf_config


def get_config(model="mf"):
  config = ncf_config.default_config()
  config.data.name = "ml-1m"
  config.model.dim = 64
  # App. A.2, final hyperparameters for MovieLens.
  config.train.learning_rate = 0.002
  config.train.reg = 0.005
  config.train.num_negatives = 8
  config.train.epochs = 256
  if model != "mf":  # gmf, mlp, neumf: NCF's own recipe.
    ncf_config.use_ncf_recipe(config, model)
  return config
