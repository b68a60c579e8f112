"""MF with biases on the NCF split of Pinterest, App. A.2 hyperparameters.

python -m dot_vs_learned.main --config=configs/pinterest.py --workdir=/tmp/dvl_pinterest
Learned similarities with NCF's recipe: --config=configs/pinterest.py:gmf (mlp, neumf,
neumf_pretrained).
iALS with Rendle et al. 2022's published settings for this split: :ials (d =
192, lambda 0.02, alpha0 0.007, 16 epochs). EASE^R's lambda has not been
tuned here (no Pinterest data on our machines): tune it with the App. A.2
tuning command and --config.sweep.models="('ease',)".
Local NCF files: add --config.data.dir=/path/to/folder/with/pinterest-20.*
"""

from dot_vs_learned import ials
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
  if model == "ials":
    ncf_config.use_ials(config, ials.PINTEREST)
  elif model != "mf":  # gmf, mlp, neumf: NCF's own recipe.
    ncf_config.use_ncf_recipe(config, model)
  return config
