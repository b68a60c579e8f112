"""Config checking shared by the experiments: errors name the field."""


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
