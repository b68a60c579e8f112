"""Config checking shared by the experiments: errors name the field, and
quote bad values cut short; the memory a config may ask for."""

import math
import os


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


def shorten(text, width=40) -> str:
  """str(text), cut to `width` characters and "..." when longer: a bad
  value quoted in a one-line error."""
  text = str(text)
  return text if len(text) <= width else text[:width] + "..."


def is_whole(value) -> bool:
  """An integer (a d or an m: array shapes), not 64.0 nor True."""
  return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
  """A finite int or float (a grid's value), not a bool, a string, nan nor
  inf: an infinite learning rate or lambda would only fail after training."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def available_bytes() -> int:
  """The memory of the first device: the accelerator's, or the host's RAM."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  stats = device.memory_stats() if device.platform != "cpu" else None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return host_bytes()


def host_bytes() -> int:
  """The host's RAM."""
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_overflow(host, device):
  """(need, "host" or "device", limit) for the first memory that `host`
  and `device` bytes would fill beyond 90%; None if both fit. On a CPU one
  memory, the host's RAM, holds both."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.devices()[0].platform == "cpu":
    host, device = host + device, 0
  for need, of, limit in ((host, "host", host_bytes()),
                          (device, "device", available_bytes())):
    if need > 0.9 * limit:
      return need, of, limit
  return None
