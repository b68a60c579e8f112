"""The README's commands run as written: modules, scripts, flags, configs.

Every command in a fenced block of README.md and docs/results.md that calls
`python -m dot_vs_learned.X` or `python benchmarks/X.py` is checked
statically, without running it: the module or script exists, each `--flag`
is defined in its source (absl `DEFINE_*("name"` or argparse
`add_argument("--name"`), `--config=FILE[:arg]` loads through
`get_config(arg)`, and each `--config.a.b=value` names a field of that
config whose type the value fits. The README's test command must equal the
one in .ci/run, and every later command must call `.venv/bin/python`.
"""

import ast
import functools
import importlib.util
import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/results.md")
VENV_PYTHON = ".venv/bin/python"
SETUP_RUN = ("python3 -m venv .venv && .venv/bin/pip install -e . && "
             ".venv/bin/python -m dot_vs_learned.main "
             "--config=configs/default.py --workdir=/tmp/dvl_default")
SETUP_TEST = ('python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" '
              "&& .venv/bin/python -m pytest -q")
ABSL_BUILTIN = {"help", "helpshort", "helpfull"}  # absl defines these itself
# DIR, TUNE_DIR: capitals name a value the reader supplies (a folder).
READER_VALUE = re.compile(r"[A-Z][A-Z0-9_-]*")


def code_blocks(text) -> list[str]:
  """The fenced blocks of a Markdown text, except those marked as Python."""
  blocks = re.findall(r"^```([^\n]*)\n(.*?)^```", text, re.S | re.M)
  return [body for language, body in blocks if language.strip() != "python"]


def shell_lines(block) -> list[str]:
  """A block's logical lines: trailing-backslash continuations joined."""
  joined = re.sub(r"\s*\\\n\s*", " ", block)
  return [line.strip() for line in joined.splitlines() if line.strip()]


def split_command(part) -> list[str]:
  """One command's words, `# comments` and leading VAR=value dropped."""
  words = shlex.split(part, comments=True)
  while words and re.fullmatch(r"[A-Za-z_]\w*=\S*", words[0]):
    words = words[1:]
  return words


def commands(text) -> list[str]:
  """Every command of the fenced blocks: a line's `&&` parts, one each."""
  return [part.strip() for block in code_blocks(text)
          for line in shell_lines(block) for part in line.split("&&")
          if split_command(part)]


def is_python(words) -> bool:
  return pathlib.PurePath(words[0]).name in ("python", "python3")


def suite_commands(text) -> list[str]:
  """The commands that run this suite's modules or benchmark scripts."""
  found = []
  for command in commands(text):
    words = split_command(command)
    if is_python(words) and len(words) > 1 and (
        words[1].startswith("benchmarks/") or
        words[1:3] and words[1] == "-m" and len(words) > 2 and
        words[2].startswith("dot_vs_learned.")):
      found.append(command)
  return found


@functools.lru_cache(maxsize=None)
def defined_flags(path) -> frozenset:
  """The flag names a module or script defines, read from its source."""
  source = pathlib.Path(path).read_text()
  absl = re.findall(r"DEFINE_\w+\(\s*[\"'](\w+)[\"']", source)
  argparse = re.findall(r"add_argument\(\s*[\"']--(\w+)[\"']", source)
  return frozenset(absl + argparse + (
      sorted(ABSL_BUILTIN) if absl else ["help"] if argparse else []))


@functools.lru_cache(maxsize=None)
def load_config(spec):
  """configs/FILE.py[:arg] -> get_config(arg), as config_flags calls it."""
  path, _, arg = spec.partition(":")
  name = "readme_config_" + re.sub(r"\W", "_", path)
  module_spec = importlib.util.spec_from_file_location(name, ROOT / path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  if config.get("experiment") == "ncf":  # e.g. a misspelt model after ':'
    from dot_vs_learned import ncf_config  # pylint: disable=g-import-not-at-top
    ncf_config.validate(config)
  return config


def _fits(value, default) -> bool:
  """Whether a command-line value parses as the type of a config field."""
  if READER_VALUE.fullmatch(value):
    return True
  try:
    if isinstance(default, bool):
      return value.lower() in ("true", "false", "1", "0")
    if isinstance(default, int):
      int(value)
    elif isinstance(default, float):
      float(value)
    elif isinstance(default, (tuple, list)):
      return isinstance(ast.literal_eval(value), (tuple, list))
  except (ValueError, SyntaxError):
    return False
  return True


def problems(command) -> list[str]:
  """What would stop a suite command from running as written ([] if none)."""
  words = split_command(command)
  if words[1] == "-m":
    module = words[2]
    path = ROOT / (module.replace(".", "/") + ".py")
    args = words[3:]
  else:
    module, path, args = words[1], ROOT / words[1], words[2:]
  if not path.is_file():
    return [f"{module}: no file {path.relative_to(ROOT)}"]
  known = defined_flags(str(path))
  found, config, overrides = [], None, []
  for arg in args:
    if not arg.startswith("--"):
      found.append(f"{arg}: not a --flag")
      continue
    name, _, value = arg[2:].partition("=")
    if name.startswith("config.") and "config" in known:
      overrides.append((name[len("config."):], value))
    elif name not in known and not (name.startswith("no") and
                                    name[2:] in known):
      found.append(f"--{name}: not a flag of {path.relative_to(ROOT)}")
    elif name == "config":
      if not (ROOT / value.partition(":")[0]).is_file():
        found.append(f"--config={value}: no such file")
        continue
      try:
        config = load_config(value)
      except Exception as e:  # pylint: disable=broad-except
        found.append(f"--config={value}: get_config fails: {e!r}")
  for field, value in overrides:
    if config is None:
      found.append(f"--config.{field}: no loadable --config")
      continue
    node = config
    try:
      for key in field.split("."):
        node = node[key]
    except (KeyError, TypeError):
      found.append(f"--config.{field}: no such config field")
      continue
    if not _fits(value, node):
      found.append(f"--config.{field}={value}: not a {type(node).__name__}")
  return found


TEXTS = {name: (ROOT / name).read_text() for name in DOCS}
SUITE_COMMANDS = sorted({c for text in TEXTS.values()
                         for c in suite_commands(text)})


@pytest.mark.parametrize("command", SUITE_COMMANDS, ids=SUITE_COMMANDS)
def test_command_runs_as_written(command):
  assert problems(command) == []


def test_the_docs_hold_the_commands_of_every_experiment():
  modules = {split_command(c)[2] for c in SUITE_COMMANDS
             if split_command(c)[1] == "-m"}
  assert {"dot_vs_learned.main", "dot_vs_learned.report",
          "dot_vs_learned.recommend", "dot_vs_learned.splits"} <= modules
  configs = {a.split("=")[1].split(":")[0] for c in SUITE_COMMANDS
             for a in split_command(c) if a.startswith("--config=")}
  assert {"configs/default.py", "configs/movielens.py",
          "configs/tune_movielens.py", "configs/synthetic.py",
          "configs/retrieval.py"} <= configs
  assert len(SUITE_COMMANDS) >= 30


def test_readme_starts_with_the_two_setup_commands():
  blocks = [b.strip() for b in code_blocks(TEXTS["README.md"])]
  assert blocks[:2] == [SETUP_RUN, SETUP_TEST]


def test_readme_test_command_is_the_one_ci_runs():
  ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
        if ".venv/bin/python -m pytest -q" in line and "venv .venv" in line]
  assert ci == [SETUP_TEST]


@pytest.mark.parametrize("name", DOCS)
def test_commands_call_the_venv_python(name):
  """No bare `python`: the docs never ask the reader to activate the venv."""
  bare = [c for c in commands(TEXTS[name]) if is_python(split_command(c))
          and split_command(c)[0] != VENV_PYTHON
          and split_command(c)[:3] != ["python3", "-m", "venv"]]
  assert bare == []
  inline = re.findall(r"(?<![\w./])python3? (?:-m (?!venv)|benchmarks/)\S*",
                      TEXTS[name])
  assert inline == []
  assert "source .venv/bin/activate" not in TEXTS[name]


def test_parser_reads_chains_continuations_comments_and_env():
  text = ("intro\n```\nA=1 .venv/bin/python -m dot_vs_learned.report \\\n"
          "  --runs=DIR --out=R  # a comment\npip install x && "
          ".venv/bin/python benchmarks/mf_speed.py --dims=16\n```\n"
          "```python\nimport json\n```\n")
  assert suite_commands(text) == [
      "A=1 .venv/bin/python -m dot_vs_learned.report --runs=DIR --out=R  "
      "# a comment", ".venv/bin/python benchmarks/mf_speed.py --dims=16"]
  assert split_command(suite_commands(text)[0]) == [
      ".venv/bin/python", "-m", "dot_vs_learned.report", "--runs=DIR",
      "--out=R"]


@pytest.mark.parametrize("command,problem", [
    ("python -m dot_vs_learned.mian --config=configs/default.py",
     "dot_vs_learned.mian: no file dot_vs_learned/mian.py"),
    ("python benchmarks/mf_sped.py", "benchmarks/mf_sped.py: no file "
     "benchmarks/mf_sped.py"),
    ("python -m dot_vs_learned.main --config=configs/default.py "
     "--workdri=DIR", "--workdri: not a flag of dot_vs_learned/main.py"),
    ("python -m dot_vs_learned.main --config=configs/default.py "
     "--nooverwrit --workdir=DIR",
     "--nooverwrit: not a flag of dot_vs_learned/main.py"),
    ("python -m dot_vs_learned.main --config=configs/defualt.py "
     "--workdir=DIR", "--config=configs/defualt.py: no such file"),
    ("python -m dot_vs_learned.main --config=configs/default.py "
     "--config.model.dimm=3 --workdir=DIR",
     "--config.model.dimm: no such config field"),
    ("python -m dot_vs_learned.main --config=configs/default.py "
     "--config.model.dim=big --workdir=DIR",
     "--config.model.dim=big: not a int"),
    ("python benchmarks/device_check.py --out=D --quik",
     "--quik: not a flag of benchmarks/device_check.py"),
    ("python -m dot_vs_learned.report --runs=A DIR", "DIR: not a --flag"),
])
def test_checker_catches_a_typo(command, problem):
  assert problems(command) == [problem]


def test_checker_catches_a_bad_config_argument():
  (problem,) = problems("python -m dot_vs_learned.main "
                        "--config=configs/movielens.py:gmff --workdir=DIR")
  assert problem.startswith("--config=configs/movielens.py:gmff: get_config "
                            "fails: ConfigError(")
  (problem,) = problems("python -m dot_vs_learned.main "
                        "--config=configs/synthetic.py:reducd --workdir=DIR")
  assert "ValueError" in problem


def test_checker_accepts_flags_of_every_kind():
  assert problems(
      "python -m dot_vs_learned.main --config=configs/tune_movielens.py "
      "--config.final.data.dir=X --config.sweep.points_per_program=1 "
      "--config.final.dims='(64,)' --config.checkpoint.keep=0 "
      "--nooverwrite --workdir=DIR --help") == []
