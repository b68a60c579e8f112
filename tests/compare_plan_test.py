"""Tests of the comparison's plan (compare_plan.py): grids and budget."""

import pytest

from dot_vs_learned import compare
from dot_vs_learned import compare_plan
from dot_vs_learned import data
from dot_vs_learned import search_space

import compare_test  # pylint: disable=g-bad-import-order


@pytest.fixture(scope="module")
def split(tmp_path_factory):
  folder = compare_test._files(tmp_path_factory.mktemp("data"))
  return folder, data.load_ncf(folder, "tiny")


def test_budget_split_equally_among_the_trained_models(split):
  folder, d = split
  config = compare_test._config(folder, budget=3000)
  plans = compare_plan.plan(config, d, folder)
  assert list(plans) == [m for m in compare.MODELS if m != "popularity"]
  spent = {}
  for name, t in plans.items():
    points = (len(search_space.points(t, name))
              * len(search_space.shapes(t)))
    if name != "ease":  # EASE^R trains no epochs
      spent[name] = t.train.epochs * points
      # Each trained model's share is 3000 / 5 = 600 epochs x points.
      assert 600 - points * t.eval.every < spent[name] <= 600
      assert t.train.epochs % t.eval.every == 0
      assert t.train.epochs // t.eval.every <= 2  # compare.evaluations
  assert sum(spent.values()) <= 3000


def test_grids_follow_the_data_and_ncf_keeps_its_recipe(split):
  folder, d = split
  config = compare_test._config(folder)
  config.compare.ials.alpha0_totals = (14.0, 140.0)
  config.compare.ease.regs_per_count = (1.0,)
  plans = compare_plan.plan(config, d, folder)
  assert plans["ials"].sweep.ials.alpha0s == (0.1, 1.0)  # / 140 items
  mean_count = len(d.train_items) / 140
  assert plans["ease"].sweep.ease.regs == (float(f"{mean_count:.3g}"),)
  for name in ("gmf", "mlp", "neumf"):
    t = plans[name]
    assert (t.train.optimizer, t.train.batch_size, t.sweep.num_negatives,
            t.sweep.init_stddevs) == ("adam", 256, (4,), (0.01,))
  assert plans["neumf"].sweep.dims == (6,)  # d = 8 -> 3k below
  # The tuning split is the data, the real split the final runs'.
  assert plans["mf"].data.name == "tiny.holdout"
  assert plans["mf"].final.data.name == "tiny"
  assert plans["mf"].final.num_seeds == 2


def test_each_model_gets_its_grid_size_and_optimizer(split):
  folder, d = split
  config = compare_test._config(folder)
  config.compare.ncf.optimizer = "lazy_adam"
  for name in compare.MODELS[1:]:
    t = compare_plan.model_config(config, name, d, folder)
    assert compare_plan.grid_size(config, name) == (
        len(search_space.points(t, name)) * len(search_space.shapes(t)))
    assert t.train.optimizer == ("lazy_adam" if name in compare_plan.LEARNED
                                 else "batched")
  # 40 epochs: MF, iALS (2 points each) 4 per point; GMF, MLP, NeuMF 8.
  plans = compare_plan.plan(config, d, folder)
  assert {n: (t.train.epochs, t.eval.every) for n, t in plans.items()
          if n != "ease"} == {"mf": (4, 2), "ials": (4, 2), "gmf": (8, 4),
                              "mlp": (8, 4), "neumf": (8, 4)}


def test_probes_are_recorded_and_reused_and_eta_counts_point_epochs(
    split, monkeypatch, tmp_path):
  folder, d = split
  plans = compare_plan.plan(compare_test._config(folder, budget=3000), d,
                            folder)
  plans = {name: plans[name] for name in ("mf", "ials", "ease")}
  timed = []
  monkeypatch.setattr(compare_plan, "_probe_seconds", lambda t, name, data:
                      timed.append(name) or {"mf": 2.0, "ials": 3.0}[name])
  probes = compare_plan.workdir_probes(plans, d, tmp_path)
  assert probes == {"mf": 2.0, "ials": 3.0} and timed == ["mf", "ials"]
  # A second start reads them back: nothing is timed again.
  assert compare_plan.workdir_probes(plans, d, tmp_path) == probes
  assert timed == ["mf", "ials"]
  # EASE^R (closed form) has no probe: its point-epochs count nothing.
  assert compare_plan.eta(probes, {"mf": 100, "ials": 40, "ease": 9}) == (
      2.0 * 100 + 3.0 * 40)
