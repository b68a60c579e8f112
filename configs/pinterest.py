"""MF with biases on the NCF split of Pinterest, App. A.2 hyperparameters.

python -m dot_vs_learned.main --config=configs/pinterest.py --workdir=/tmp/dvl_pinterest
Learned similarities with NCF's recipe: --config=configs/pinterest.py:gmf (mlp, neumf,
neumf_pretrained).
Local NCF files: add --config.data.dir=/path/to/folder/with/pinterest-20.*
"""

from dot_vs_learned import ncf_config


def get_config(model="mf"):
  config = ncf_config.default_config()
  config.data.name = "pinterest-20"
  config.model.dim = 64
  # App. A.2, final hyperparameters for Pinterest.
  config.train.learning_rate = 0.007
  config.train.reg = 0.01
  config.train.num_negatives = 10
  config.train.epochs = 256
  if model != "mf":  # gmf, mlp, neumf: NCF's own recipe.
    ncf_config.use_ncf_recipe(config, model)
  return config
