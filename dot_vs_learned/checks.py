"""Config checking shared by the experiments: errors name the field."""


class ConfigError(ValueError):
  """A config field holds a value out of its range; the message names it."""


def check(ok, field, value, requirement) -> None:
  """Raises ConfigError("config field FIELD=VALUE: REQUIREMENT") unless ok."""
  if not ok:
    raise ConfigError(f"config field {field}={value!r}: {requirement}")
