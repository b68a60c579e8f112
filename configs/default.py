"""MF on the embedded generated data: runs offline in a few minutes on a CPU.

python -m dot_vs_learned.main --config=configs/default.py --workdir=/tmp/dvl_default
"""

from dot_vs_learned import ncf_config


def get_config(arg=None):
  if arg is not None:
    raise ValueError(f"configs/default.py takes no ':' argument "
                     f"(got {arg!r})")
  config = ncf_config.default_config()
  config.data.name = "default"
  config.model.dim = 32
  config.train.learning_rate = 0.01  # The small data needs fewer, larger steps.
  config.train.epochs = 48
  config.train.num_seeds = 3
  config.eval.every = 8
  return config
