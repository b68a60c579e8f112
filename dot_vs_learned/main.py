"""Entry point: `python -m dot_vs_learned.main --config=configs/X.py --workdir=DIR`."""

import re
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

from dot_vs_learned import checks
from dot_vs_learned import compare
from dot_vs_learned import config_help
from dot_vs_learned import data
from dot_vs_learned import distributed
from dot_vs_learned import ncf
from dot_vs_learned import results
from dot_vs_learned import serving
from dot_vs_learned import summary
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
EXPERIMENTS = {"ncf": ncf.run, "compare": compare.run, "retrieval": serving.run,
               "synthetic": synthetic.run, "tuning": tuning.run}
_HELP = {"--help", "-h", "-?", "--helpshort", "--helpfull"}


def parse_flags(argv):
  """absl's flag parsing, with a bad --config.* override (an unknown field,
  a value of the wrong type) or config file as one line, and --help exiting
  with status 0."""
  try:
    return flags.FLAGS(argv)
  except SystemExit as e:
    if _HELP & set(argv):
      config_help.print_help(argv)
      sys.exit(0)
    raise
  except (KeyError, AttributeError) as e:  # an unknown --config.* field
    text = " ".join(str(e.args[0] if e.args else e).replace(
        "\\n", " ").replace("\\'", "'").split())
    field = re.match(r"\W*(\w+)", text)
    given = [a.split("=")[0] for a in argv[1:] if field and a.startswith(
        "--config.") and a.split("=")[0].endswith(f".{field[1]}")]
    hint = re.search(r"Did you mean [^?]*\?", text)
    sys.exit(f"error: {given[0] if given else '--config'}: no such config "
             f"field{'; ' + hint[0] if hint else ''}")
  except flags.Error as e:  # a config file's error comes with its traceback
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reason = f" {lines[-1]}" if "Traceback" in str(e) else ""
    sys.exit(f"error: {lines[0]}{reason}")
  except SyntaxError as e:  # in the config file
    sys.exit(f"error: --config: {e.filename}:{e.lineno}: {e.msg}")
  except Exception as e:  # pylint: disable=broad-except
    # config_flags runs the config file while parsing --config.* overrides:
    # any other error raised there (get_config's own, a file that is not
    # Python) is the file's, and absl passes it through unwrapped.
    reason = [line.strip() for line in str(e).splitlines() if line.strip()]
    given = next((a for a in argv[1:] if a.startswith("--config=")),
                 "--config")
    sys.exit(f"error: {given}: cannot load it ({type(e).__name__}"
             f"{': ' + reason[-1] if reason else ''})")


def _tuples_given_twice(argv, config) -> list[str]:
  """The --config.* tuple fields given more than once: config_flags joins
  them ("(5,)" then "(20,)" is (5, 20)); a scalar's last value wins."""
  given = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
  twice = []
  for flag in sorted({name for name in given if given.count(name) > 1}):
    value = config
    for part in flag[len("--config."):].split("."):
      value = value[part]
    if isinstance(value, (tuple, list)):
      twice.append(flag)
  return twice


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _DISTRIBUTED.value:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value,
                           _PROCESS_ID.value)
  try:
    config = _CONFIG.value
    experiment = config.experiment
  except Exception as e:  # pylint: disable=broad-except
    # config_flags reports a config file it could not load only when read.
    reason = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: --config={flags.FLAGS['config'].serialize()[9:]}: "
             f"cannot load it ({reason[-1] if reason else type(e).__name__})")
  twice = _tuples_given_twice(sys.argv, config)
  if twice:
    sys.exit(f"error: {twice[0]}: a tuple given more than once, which "
             "config_flags would join; give it once")
  if experiment not in EXPERIMENTS:
    sys.exit(f"error: config field experiment={config.experiment!r}: must "
             f"be one of {tuple(EXPERIMENTS)}")
  summary.code_version()  # the code of this process, before anything runs
  try:
    EXPERIMENTS[config.experiment](config, _WORKDIR.value, _OVERWRITE.value)
  except (data.DataError, checks.ConfigError, results.WorkdirError) as e:
    # Input problems are reported as one message, without a traceback.
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  distributed.quiet_backend_probe()
  app.run(main, flags_parser=parse_flags)
