"""Config checking shared by the experiments: errors name the field."""

import math


class ConfigError(ValueError):
  """A config field holds a value out of its range; the message names it.
  check()'s errors also carry the field and the requirement."""
  field = requirement = None


def check(ok, field, value, requirement) -> None:
  """Raises ConfigError("config field FIELD=VALUE: REQUIREMENT") unless ok."""
  if not ok:
    error = ConfigError(f"config field {field}={value!r}: {requirement}")
    error.field, error.requirement = field, requirement
    raise error


def is_whole(value) -> bool:
  """An integer (a d or an m: array shapes), not 64.0 nor True."""
  return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
  """A finite int or float (a grid's value), not a bool, a string, nan nor
  inf: an infinite learning rate or lambda would only fail after training."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))
