"""--help's config listing: meanings read from the default configs' comments."""

import pytest

from dot_vs_learned import config_help


def _example_defaults():
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict()
  config.experiment = "x"  # which one
  config.train = ml_collections.ConfigDict(dict(
      lr=0.1,  # the step size;
      # continued here
      epochs=3,
      seeds=(1, 2),  # seeds, a tuple # with a hash
      nested=ml_collections.ConfigDict(dict(k=1)),
  ))
  return config


def test_meanings_come_from_each_fields_comment():
  assert config_help.meanings(_example_defaults) == {
      "experiment": "which one",
      "train.lr": "the step size; continued here",
      "train.seeds": "seeds, a tuple # with a hash"}


def test_describe_lists_every_leaf_with_value_and_meaning():
  text = config_help.describe(_example_defaults(), (_example_defaults,))
  assert text.splitlines() == [
      "  --config.experiment='x'", "      which one",
      "  --config.train.epochs=3",
      "  --config.train.lr=0.1", "      the step size; continued here",
      "  --config.train.nested.k=1",
      "  --config.train.seeds=(1, 2)", "      seeds, a tuple # with a hash"]


@pytest.mark.parametrize("experiment", sorted(config_help.DEFAULTS))
def test_every_field_of_every_experiment_has_a_meaning(experiment):
  functions = config_help.DEFAULTS[experiment]
  build = [f for f in functions if f.__name__ == "default_config"][-1]
  text = config_help.describe(build(), functions)
  lines = text.splitlines()
  bare = [line.strip() for line, below in zip(lines, lines[1:] + [""])
          if line.startswith("  --config.") and
          not below.startswith("      ")]
  assert not bare, f"{experiment}: fields without a comment: {bare}"


def test_help_with_a_config_lists_its_fields(capsys):
  config_help.print_help(["main.py", "--help",
                          "--config=configs/movielens.py:neumf"])
  out = capsys.readouterr().out
  assert "--config=configs/movielens.py:neumf (experiment ncf)" in out
  # NCF's recipe as the file sets it, with the field's meaning below.
  assert ("  --config.model.dim=63\n      embedding dimension d per side; MF "
          "counts its bias in d.\n") in out
  assert "  --config.train.epochs=20\n      training epochs" in out


def test_help_with_a_bad_config_says_so_in_one_line(capsys, tmp_path):
  config_help.print_help(["main.py", "--help", "--config", str(tmp_path)])
  out = capsys.readouterr().out.strip().splitlines()
  assert len(out) == 1 and out[0].startswith(f"--config={tmp_path}: cannot")
