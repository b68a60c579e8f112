"""What the benchmark scripts' command lines share: bad input (a data
folder, a config value, a flag's list) as one `error: ...` line, as the
suite's own commands give it, not a traceback."""

import sys

from absl import app
from absl import flags


def whole_numbers(name, low) -> None:
  """Checks, when flags are parsed, that the list flag --name holds whole
  numbers >= low (dimensions, device counts)."""
  flags.register_validator(
      name, lambda values: all(
          v.strip().isdigit() and int(v) >= low for v in values),
      f"must be whole numbers >= {low}, separated by commas")


def run(main) -> None:
  """app.run(main), with the suite's input errors as one line."""
  # Imported here: a script may set XLA's flags before the suite loads.
  from dot_vs_learned import checks  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import data  # pylint: disable=g-import-not-at-top

  def guarded(argv):
    try:
      return main(argv)
    except (data.DataError, checks.ConfigError) as e:
      sys.exit(f"error: {e}")

  app.run(guarded)
