"""Paper §3.3.3: L2 on GMF's embeddings but not on w lets the scale drift.

python -m dot_vs_learned.main --config=configs/gmf_drift.py --workdir=/tmp/dvl_drift

The GMF loss is invariant under (P, Q, w, lambda) -> (P/a, Q/a, a^2 w,
a^2 lambda), so lambda on P and Q alone regularizes less and less as w
grows. metrics.jsonl records the mean embedding row norms and |w| every
`eval.every` epochs. With --config.train.l2_weights=0.01 w is penalized too.
Runs on the embedded data in about a minute on a 2-core CPU.
"""

from dot_vs_learned import ncf_config


def get_config(arg=None):
  if arg is not None:
    raise ValueError(f"configs/gmf_drift.py takes no ':' argument "
                     f"(got {arg!r})")
  config = ncf_config.default_config()
  config.data.name = "default"
  ncf_config.use_ncf_recipe(config, "gmf")
  config.model.dim = 32
  config.train.reg = 0.01  # on the embedding rows of each example
  config.train.l2_weights = 0.0  # none on w
  config.train.epochs = 100
  config.train.num_seeds = 2
  config.eval.every = 10
  return config
