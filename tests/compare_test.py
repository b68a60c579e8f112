"""Tests of the comparison command (compare.py, configs/compare.py)."""

import json
import re

import jax
import numpy as np
import pytest

from dot_vs_learned import compare
from dot_vs_learned import compare_plan
from dot_vs_learned import data
from dot_vs_learned import datasets
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import results
from dot_vs_learned import splits
from dot_vs_learned import tuning


def _files(folder, three_columns=False, swap_test=False):
  """The generated set as NCF files in `folder` (name "tiny"). swap_test:
  each user's test item traded with its first negative (another valid
  test file, same training file). three_columns: no timestamp column."""
  d = datasets.generate_default(num_users=100, num_items=140, seed=5,
                                num_negatives=30)
  if swap_test:
    negatives = d.test_negatives.copy()
    test = negatives[:, 0].copy()
    negatives[:, 0] = d.test_items
    d = d._replace(test_items=test, test_negatives=negatives)
  data.write_ncf(d, folder, "tiny")
  if three_columns:
    path = folder / "tiny.train.rating"
    lines = path.read_text().splitlines()
    path.write_text("".join("\t".join(line.split()[:3]) + "\n"
                            for line in lines))
  return folder


def _config(folder, budget=40):
  config = compare.default_config()
  config.data.update(name="tiny", dir=str(folder))
  config.eval.full_ranking_ks = (10,)
  c = config.compare
  c.update(budget=budget, evaluations=2, num_seeds=2)
  c.mf.update(learning_rates=(0.01, 0.05), regs=(0.001,), num_negatives=(4,),
              dims=(8,))
  c.ncf.update(learning_rates=(0.003,), regs=(0.0,), dims=(8,))
  c.ials.update(regs=(0.01, 0.1), alpha0_totals=(30.0,), dims=(8,))
  c.ease.regs_per_count = (1.0, 4.0)
  config.train.batch_size = 256
  return config


QUICK = ("popularity", "mf", "ease")  # the quick tests' models


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
  """MF, EASE^R and popularity compared on 3-column files."""
  folder = _files(tmp_path_factory.mktemp("data"), three_columns=True)
  workdir = tmp_path_factory.mktemp("compare")
  config = _config(folder)
  config.compare.models = QUICK
  return folder, workdir, compare.run(config, workdir)


@pytest.mark.slow
def test_every_model_is_tuned_and_trained_on_the_real_split(tmp_path):
  folder = _files(tmp_path / "data")
  workdir = tmp_path / "compare"
  out = compare.run(_config(folder, budget=240), workdir)
  assert list(out["models"]) == list(compare.MODELS)
  assert out["judged_by"] == ["hr@10", "ndcg@10"]
  for name, row in out["models"].items():
    final = row["final"]
    assert final["model"] == name and final["dataset"] == "tiny"
    assert final["num_seeds"] == (1 if name in ("popularity", "ease") else 2)
    if name != "popularity":
      assert row["selected"]["model"] == name
      # The final run trains the selected epochs with the selected values.
      config = json.loads((workdir / f"final_{name}" / "config.json")
                          .read_text())
      assert config["train"]["reg"] == row["selected"]["reg"]
      if name not in ("ease", "popularity"):
        assert final["final"]["epoch"] == row["selected"]["epochs"]
  # iALS's alpha0 grid is alpha0 x items = 30 on 140 items (3 digits).
  assert out["models"]["ials"]["selected"]["alpha0"] == 0.214
  # The learned models keep NCF's batch and negatives.
  gmf = json.loads((workdir / "final_gmf" / "config.json").read_text())
  assert (gmf["train"]["batch_size"], gmf["train"]["num_negatives"],
          gmf["train"]["optimizer"]) == (256, 4, "adam")
  text = (workdir / "comparison.md").read_text()
  assert len([line for line in text.splitlines()
              if line.startswith("| ")]) == 1 + len(compare.MODELS)
  mf = out["models"]["mf"]["final"]["final"]["hr@10"]
  assert f"| {mf['mean']:.4f} ± {mf['std']:.4f} |" in text
  rows = (workdir / "comparison.csv").read_text().splitlines()
  assert rows[0].startswith("model,selected on the tuning split,tuning value")
  assert len(rows) == 1 + len(compare.MODELS)


@pytest.mark.slow  # a whole comparison
def test_three_column_file_gets_a_random_tuning_item(compared, tmp_path):
  folder, workdir, _ = compared
  tune = data.load_ncf(workdir / compare.SPLIT, "tiny.holdout")
  # "auto" picked "random": the same split as pick="random", not "latest".
  for pick, same in (("random", True), ("latest", False)):
    other = splits.holdout_split(folder, "tiny", tmp_path / pick, "x", 0,
                                 pick)
    assert np.array_equal(other.test_items, tune.test_items) == same
  real = data.load_ncf(folder, "tiny")
  assert tune.num_users == real.num_users
  assert len(tune.train_users) == len(real.train_users) - real.num_users


@pytest.mark.slow  # a whole comparison
def test_budget_is_honoured(compared):
  _, workdir, out = compared
  plan = json.loads((workdir / compare.PLAN).read_text())
  trained = [n for n in plan if n not in ("ease",)]
  spent = sum(p["epochs"] * p["points"] * len(p["shapes"])
              for n, p in plan.items() if n in trained)
  # MF alone trains: 40 epochs over its 2 points, evaluated twice.
  assert spent == 40 and plan["mf"]["every"] == 10
  assert out["models"]["mf"]["selected"]["epochs"] in (10, 20)
  assert "| mf d=8 |" in (workdir / "comparison.md").read_text()
  cells = results.read_json_lines(workdir / "cells.jsonl")
  for cell in cells:
    if cell["model"] in trained:
      # Each point trained its planned epochs, evaluated at every `every`.
      p = plan[cell["model"]]
      assert [c["epoch"] for c in cell["curves"]] == list(
          range(p["every"], p["epochs"] + 1, p["every"]))


def test_too_small_a_budget_names_the_field(tmp_path):
  folder = _files(tmp_path / "data")
  # MF, iALS, GMF, MLP and NeuMF train, on grids of up to 2 points.
  with pytest.raises(ncf_config.ConfigError,
                     match=re.escape("compare.budget=9") + ".*at least 10"):
    compare.run(_config(folder, budget=9), tmp_path / "w")
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("field, value", [
    ("compare.models", ("mf", "mf")), ("compare.mf.dims", (0,)),
    ("compare.mf.dims", (1,)), ("compare.ials.dims", (1,)),
    ("compare.mf.dims", (8.0,)), ("compare.ncf.dims", (8.0,)),
    ("compare.mf.num_negatives", (4.0,)),
    ("compare.mf.num_negatives", (0,)), ("compare.mf.learning_rates", (0.0,)),
    ("compare.ncf.dims", (63,)), ("compare.ncf.dims", (2,)),
    ("compare.ials.regs", (0.0,)), ("compare.ease.regs_per_count", (0.0,)),
    ("compare.ncf.optimizer", "sgd"), ("train.optimizer", "adam"),
    # An infinite value would fail only after the other models trained.
    ("compare.mf.learning_rates", (0.01, float("inf"))),
    ("compare.ease.regs_per_count", (float("inf"),)),
    ("compare.ials.regs", (float("nan"),)), ("compare.mf.regs", ("a",)),
    ("compare.split_seed", -1)])
def test_bad_fields_are_refused_before_anything_is_written(tmp_path, field,
                                                           value):
  config = _config(_files(tmp_path / "data"))
  section = config
  for part in field.split(".")[:-1]:
    section = section[part]
  section[field.split(".")[-1]] = value
  with pytest.raises(ncf_config.ConfigError, match=re.escape(f"{field}=")):
    compare.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_unquoted_models_on_the_command_line_get_the_quoted_form(tmp_path):
  # absl reads --config.compare.models=(mf,gmf) as one string in a tuple.
  config = _config(_files(tmp_path / "data"))
  config.compare.models = ("(mf,gmf)",)
  with pytest.raises(ncf_config.ConfigError,
                     match=re.escape("--config.compare.models=('mf','gmf')")):
    compare.run(config, tmp_path / "w")


@pytest.mark.slow  # a whole comparison
def test_selection_never_sees_the_test_file(compared, tmp_path):
  _, _, out = compared
  folder = _files(tmp_path / "data", three_columns=True, swap_test=True)
  config = _config(folder)
  config.compare.models = QUICK
  again = compare.run(config, tmp_path / "w")
  for name in ("mf", "ease"):
    assert again["models"][name]["selected"] == out["models"][name]["selected"]
  # ... while the final metrics, on another test file, differ.
  assert (again["models"]["mf"]["final"]["final"]["hr@10"]
          != out["models"]["mf"]["final"]["final"]["hr@10"])


@pytest.mark.slow  # a whole comparison
def test_a_killed_comparison_resumes_without_redoing_cells(tmp_path,
                                                           monkeypatch):
  folder = _files(tmp_path / "data")
  config = _config(folder)
  config.compare.models = ("mf", "ease")
  calls = []
  real_tune, real_run = tuning.tune_shape, ncf.run
  monkeypatch.setattr(tuning, "tune_shape",
                      lambda *a, **k: calls.append(a[2]) or real_tune(*a, **k))

  def killed(*args, **kwargs):
    raise KeyboardInterrupt("killed")

  monkeypatch.setattr(ncf, "run", killed)
  with pytest.raises(KeyboardInterrupt):
    compare.run(config, tmp_path / "w")
  assert calls == ["mf"]  # MF's cell recorded, then its final run killed
  monkeypatch.setattr(ncf, "run", real_run)
  out = compare.run(config, tmp_path / "w")
  assert calls == ["mf", "ease"]  # MF's cell was not tuned again
  assert set(out["models"]) == {"mf", "ease"}
  assert (tmp_path / "w" / "comparison.md").exists()
  # The tuning checkpoints went with their recorded cell.
  assert not list((tmp_path / "w").glob("checkpoints/tune_*"))


def test_what_the_data_cannot_hold_is_refused_before_anything_is_written(
    tmp_path):
  # Found once only by the final runs: after the tuning split and the sweep.
  config = _config(_files(tmp_path / "data"))
  config.compare.models = ("popularity",)
  config.eval.full_ranking_ks = (1000,)
  with pytest.raises(ncf_config.ConfigError, match=re.escape(
      "eval.full_ranking_ks=(1000,): must be <= the dataset's 140 items")):
    compare.run(config, tmp_path / "w")
  # Once an XLA out-of-memory traceback in the sweep.
  config = _config(_files(tmp_path / "data"))
  config.compare.models = ("mf",)
  config.compare.mf.dims = (10**7,)
  with pytest.raises(ncf_config.ConfigError,
                     match=r"model\.dim=10000000, .*GiB"):
    compare.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_needs_a_dataset_in_files(tmp_path):
  config = compare.default_config()
  with pytest.raises(data.DataError, match="compare needs a dataset in files"):
    compare.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_a_split_that_cannot_be_tuned_is_refused_before_anything_is_written(
    tmp_path):
  # The real split loads, but the tuning split's own checks fail: the
  # workdir must not be written (a rerun after the fix would be refused as
  # "the input files changed").
  folder = _files(tmp_path / "ncf")
  path = folder / "tiny.train.rating"
  lines = path.read_text().splitlines()
  lone = lines[0].split()[0]
  path.write_text("\n".join([lines[0]] + [line for line in lines[1:]
                                          if line.split()[0] != lone]
                            ) + "\n")
  with pytest.raises(data.DataError, match=re.escape(
      f"{path}: user {lone} has 1 distinct training items")):
    compare.run(_config(folder), tmp_path / "w")
  assert not (tmp_path / "w").exists()
  from dot_vs_learned import item_lists  # pylint: disable=g-import-not-at-top
  lists = tmp_path / "lists"  # every user has one training item
  item_lists.write_lists(item_lists.ListData(
      "tiny", 3, 6, np.arange(3), np.arange(3), np.arange(3),
      np.arange(3, 6)), lists)
  config = _config(lists)
  config.data.format = "lists"
  config.eval.update(k=3, full_ranking_ks=(3,))
  with pytest.raises(data.DataError, match=re.escape(
      f"{lists}/train.txt: no user has 2 or more training items")):
    compare.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


@pytest.mark.slow  # 15 s; item lists' selection: lists_run_test.py
def test_item_lists_are_compared_by_full_ranking(tmp_path):
  from dot_vs_learned import item_lists  # pylint: disable=g-import-not-at-top
  d = datasets.generate_default(num_users=100, num_items=140, seed=5,
                                num_negatives=30)
  users = d.train_users.astype(int)
  train, test = item_lists.holdout_fraction(users, d.train_items, 100, 0.2, 0)
  item_lists.write_lists(item_lists.ListData(
      "tiny", 100, 140, users[train], d.train_items[train], users[test],
      d.train_items[test]), tmp_path / "lists")
  config = _config(tmp_path / "lists")
  config.data.format = "lists"
  config.eval.update(k=10, full_ranking_ks=(10,))
  config.compare.models = QUICK
  out = compare.run(config, tmp_path / "w")
  assert out["judged_by"] == ["full/recall@10", "full/ndcg@10"]
  assert "tuning_full/recall@10" in out["models"]["mf"]["selected"]
  # The tuning split holds out a fifth of the training items only.
  split = item_lists.load_lists(tmp_path / "w" / compare.SPLIT)
  assert len(split.train_users) + len(split.test_users) == train.sum()
  text = (tmp_path / "w" / "comparison.md").read_text()
  assert "full/recall@10" in text and "hr@10" not in text


def test_a_resumed_comparison_reuses_its_eta_probes(tmp_path, monkeypatch):
  folder = _files(tmp_path / "data")
  config = _config(folder)
  config.compare.models = ("mf", "ials", "ease")
  probed = []
  monkeypatch.setattr(compare_plan, "_probe_seconds",
                      lambda t, name, data: probed.append(name) or 0.5)

  def killed(*args, **kwargs):
    raise KeyboardInterrupt("killed")

  monkeypatch.setattr(tuning, "tune_shape", killed)
  for _ in range(2):  # killed in MF's first cell, twice
    with pytest.raises(KeyboardInterrupt):
      compare.run(config, tmp_path / "w")
  # Probed once, at the first start; EASE^R (closed form) never.
  assert probed == ["mf", "ials"]
  machine = f"{len(jax.devices())} x {jax.devices()[0].device_kind}"
  path = tmp_path / "w" / compare_plan.PROBES
  assert json.loads(path.read_text()) == {machine: {"mf": 0.5, "ials": 0.5}}
  # A file not in that form (edited by hand) is probed again, not a crash.
  for text in ("{not json", '{"x": [1]}', f'{{"{machine}": {{"mf": "a"}}}}'):
    path.write_text(text)
    with pytest.raises(KeyboardInterrupt):
      compare.run(config, tmp_path / "w")
  assert probed == ["mf", "ials"] * 4
  assert json.loads(path.read_text()) == {machine: {"mf": 0.5, "ials": 0.5}}
