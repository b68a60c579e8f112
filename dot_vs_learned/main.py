"""Entry point: `python -m dot_vs_learned.main --config=configs/X.py --workdir=DIR`."""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from dot_vs_learned import checks
from dot_vs_learned import data
from dot_vs_learned import distributed
from dot_vs_learned import ncf
from dot_vs_learned import results
from dot_vs_learned import serving
from dot_vs_learned import synthetic
from dot_vs_learned import tuning

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "Replace a finished run in --workdir.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Multi-host: call jax.distributed.initialize (one "
    "process per host; process 0 writes the workdir, which every host must "
    "see). On Cloud TPU, SLURM or Open MPI it finds its peers itself.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "--distributed elsewhere: host:port of "
    "process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "--distributed: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "--distributed: this process's index.")
EXPERIMENTS = {"ncf": ncf.run, "retrieval": serving.run,
               "synthetic": synthetic.run, "tuning": tuning.run}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value)
  config = _CONFIG.value
  if config.experiment not in EXPERIMENTS:
    raise app.UsageError(f"config field experiment={config.experiment!r}: "
                         f"must be one of {tuple(EXPERIMENTS)}")
  try:
    EXPERIMENTS[config.experiment](config, _WORKDIR.value, _OVERWRITE.value)
  except (data.DataError, checks.ConfigError, results.WorkdirError) as e:
    # Input problems are reported as one message, without a traceback.
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
