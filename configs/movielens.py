"""MF with biases on the NCF split of MovieLens-1M, App. A.2 hyperparameters.

python -m dot_vs_learned.main --config=configs/movielens.py --workdir=/tmp/dvl_ml1m
Learned similarities with NCF's recipe: --config=configs/movielens.py:gmf (mlp, neumf,
neumf_pretrained).
The dot-product baselines: --config=configs/movielens.py:ials (Rendle et al.
2022's published settings: d = 192, lambda 0.007, alpha0 0.3, 12 epochs) and
:ease (lambda 1000, selected on the App. A.2 tuning split by
configs/tune_movielens.py with --config.sweep.models="('ease',)").
Local NCF files: add --config.data.dir=/path/to/folder/with/ml-1m.*
"""

from dot_vs_learned import ials
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
  if model == "ials":
    ncf_config.use_ials(config, ials.ML1M)
  elif model == "ease":
    config.model.name, config.train.reg = "ease", 1000.0
  elif model != "mf":  # gmf, mlp, neumf: NCF's own recipe.
    ncf_config.use_ncf_recipe(config, model)
  return config
