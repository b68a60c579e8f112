"""A tiny run for tests: small generated data, a few epochs.

python -m dot_vs_learned.main --config=configs/test.py --workdir=/tmp/dvl_test
"""

from dot_vs_learned import ncf_config


def get_config(arg=None):
  if arg is not None:
    raise ValueError(f"configs/test.py takes no ':' argument "
                     f"(got {arg!r})")
  config = ncf_config.default_config()
  config.data.name = "default"
  config.data.num_users = 200
  config.data.num_items = 150
  config.model.dim = 8
  config.train.learning_rate = 0.02
  config.train.epochs = 4
  config.train.batch_size = 256
  config.train.num_seeds = 2
  config.eval.every = 2
  return config
