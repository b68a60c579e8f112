"""`--help` with `--config=FILE`: every config field, its value and meaning.

The meanings are the fields' own comments in each experiment's
`default_config` (the house style gives every field one), read from its
source, so they are written once.
"""

import importlib.util
import inspect
import pathlib
import re

from dot_vs_learned import compare
from dot_vs_learned import ncf_config
from dot_vs_learned import search_space
from dot_vs_learned import serving
from dot_vs_learned import synthetic
from dot_vs_learned import tuning_config

# Where each experiment's fields are defined (and commented), basic first.
DEFAULTS = {"ncf": (ncf_config.default_config,),
            "compare": (ncf_config.default_config, compare.default_config),
            "retrieval": (serving.default_config,),
            "synthetic": (synthetic.default_config,),
            "tuning": (ncf_config.default_config, tuning_config.default_config,
                       search_space.add_sections)}

_SECTION = re.compile(r"\s*config\.([\w.]+) = ml_collections\.ConfigDict\(")
_ASSIGNED = re.compile(r"\s*config\.([\w.]+) = [^#]*#\s*(.+)$")
_FIELD = re.compile(r"\s*(\w+)=[^#]*#\s*(.+)$")
_COMMENT = re.compile(r"\s*#\s*(.+)$")


def meanings(default_config) -> dict[str, str]:
  """Dotted field -> its comment, from the source of a `default_config`.

  A field's comment is the one on its `name=value,` line (or on its
  `config.a.b = value` line), with comment-only lines right below it joined.
  """
  found, section, last = {}, None, None
  for line in inspect.getsource(default_config).splitlines():
    if (match := _SECTION.match(line)):
      section, last = match[1], None
    elif (match := _ASSIGNED.match(line)):
      last = match[1]
      found.setdefault(last, match[2])
    elif section and (match := _FIELD.match(line)):
      last = f"{section}.{match[1]}"
      found.setdefault(last, match[2])
    elif last and (match := _COMMENT.match(line)):
      found[last] += " " + match[1]
    else:
      last = None
  return found


def flatten(config, prefix="") -> dict[str, object]:
  """Dotted field -> value of every leaf of a ConfigDict (or dict)."""
  leaves = {}
  for name, value in config.items():
    if hasattr(value, "items"):
      leaves.update(flatten(value, f"{prefix}{name}."))
    else:
      leaves[f"{prefix}{name}"] = value
  return leaves


def describe(config, default_configs) -> str:
  """The fields of `config` with their values and meanings.

  `default_configs`: the experiment's default_config functions, most basic
  first; a field's meaning is the first found. A nested field without its own
  comment (tuning's final.data.name) takes the meaning of its last parts
  (data.name).
  """
  known = {}
  for function in default_configs:
    for field, text in meanings(function).items():
      known.setdefault(field, text)
  lines = []
  for field, value in flatten(config).items():
    parts = field.split(".")
    # The whole field, then its suffixes down to section.name.
    suffixes = [".".join(parts[i:]) for i in range(max(1, len(parts) - 1))]
    text = next((known[s] for s in suffixes if s in known), "")
    lines.append(f"  --config.{field}={value!r}")
    if text:
      lines.append(f"      {text}")
  return "\n".join(lines)


def load(spec):
  """The config of `--config=PATH[:ARG]`, as config_flags builds it."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(
      pathlib.Path(path).stem, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def print_help(argv) -> None:
  """After absl's --help: the fields of the --config given, if any."""
  specs = [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
  specs += [b for a, b in zip(argv, argv[1:]) if a == "--config"]
  if not specs:
    print("\nAdd --config=configs/X.py to --help to list that config's "
          "fields, values and meanings.")
    return
  try:
    config = load(specs[-1])
  except Exception as e:  # pylint: disable=broad-except
    print(f"\n--config={specs[-1]}: cannot load it ({type(e).__name__}: {e})")
    return
  print(f"\nConfig fields of --config={specs[-1]} (experiment "
        f"{config.experiment}), as that file sets them; override any with "
        "--config.FIELD=VALUE:")
  print(describe(config, DEFAULTS.get(config.experiment, ())))
