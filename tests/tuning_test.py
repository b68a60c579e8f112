"""Tests of the App. A.2 tuning sweep and its final runs (tuning.py)."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dot_vs_learned import checkpoints
from dot_vs_learned import checks
from dot_vs_learned import config_help
from dot_vs_learned import data
from dot_vs_learned import datasets
from dot_vs_learned import ncf
from dot_vs_learned import results
from dot_vs_learned import search_space
from dot_vs_learned import splits
from dot_vs_learned import sweep
from dot_vs_learned import tuning
from dot_vs_learned import tuning_config

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def split_dirs(tmp_path_factory):
  return make_split_dirs(tmp_path_factory.mktemp("tuning_data"))


def make_split_dirs(root):
  """Generated NCF files ("toy") and their tuning split ("toy.holdout")."""
  data.write_ncf(datasets.generate_default(150, 200, seed=5), root / "full",
                 "toy")
  splits.holdout_split(root / "full", "toy", root / "tune")
  return root


def tiny_config(split_dirs, **sweep_overrides):
  config = tuning_config.default_config()
  config.data.update(name="toy.holdout", dir=str(split_dirs / "tune"))
  config.final.data.update(name="toy", dir=str(split_dirs / "full"))
  config.model.dim = 4
  config.train.update(epochs=4, batch_size=256)
  config.eval.every = 2
  config.eval.full_ranking = False  # the final runs' own: ncf_eval_test.py
  config.sweep.update(learning_rates=(0.003, 0.05), regs=(0.0, 0.01),
                      num_negatives=(1, 2), dims=(4,), num_seeds=2)
  config.sweep.update(sweep_overrides)
  config.final.update(dims=(4, 6), num_seeds=2)
  return config


@pytest.mark.slow  # a sweep and its finals
def test_sweep_selects_on_the_tuning_split_and_runs_the_finals(
    split_dirs, tmp_path):
  config = tiny_config(split_dirs)
  config.final.dims = (6,)  # not the sweep's d; the slow tests run two
  config.lock()  # as config_flags hands it over from the command line
  out = tuning.run(config, tmp_path)
  cells = sweep.done_cells(tmp_path)
  assert sorted(cells) == ["tune model=mf d=4 m=1", "tune model=mf d=4 m=2"]
  record = cells["tune model=mf d=4 m=1"]
  assert len(record["points"]) == 2 * 2 * 2  # lr x lambda x seeds
  assert [c["epoch"] for c in record["curves"]] == [2, 4]
  # The selection is the best mean-over-seeds tuning HR of any point, epoch.
  best = max(np.mean([c["hr"][j], c["hr"][j + 1]])
             for r in cells.values() for c in r["curves"]
             for j in range(0, 8, 2))
  chosen = out["selected"]
  assert chosen["tuning_hr@10"] == pytest.approx(best)
  assert chosen["learning_rate"] in (0.003, 0.05)
  assert chosen["epochs"] in (2, 4)
  assert json.loads((tmp_path / tuning.SELECTION).read_text()) == chosen
  for dim in (6,):
    final = json.loads((tmp_path / f"final_d{dim}" / "config.json").read_text())
    assert final["data"]["name"] == "toy" and final["model"]["dim"] == dim
    assert final["train"]["learning_rate"] == chosen["learning_rate"]
    assert final["train"]["epochs"] == chosen["epochs"]
    assert len(out["final"][str(dim)]["hr@10"]["per_seed"]) == 2


@pytest.mark.slow
def test_rerun_recomputes_nothing_finished(split_dirs, tmp_path, monkeypatch):
  config = tiny_config(split_dirs, num_negatives=(1,))
  first = tuning.run(config, tmp_path)
  (tmp_path / results.RESULTS).unlink()
  (tmp_path / "final_d6" / results.RESULTS).unlink()
  calls = []
  real_tune, real_run = tuning.tune_shape, ncf.run
  monkeypatch.setattr(tuning, "tune_shape",
                      lambda *a: calls.append("tune") or real_tune(*a))
  monkeypatch.setattr(ncf, "run",
                      lambda c, *a, **k: calls.append(c.model.dim) or
                      real_run(c, *a, **k))
  second = tuning.run(config, tmp_path)
  assert calls == [6]  # only the unfinished final run
  assert second["selected"] == first["selected"]
  assert second["final"]["6"]["hr@10"] == first["final"]["6"]["hr@10"]
  # A final run's results.json cut short: named, not trained over.
  (tmp_path / results.RESULTS).unlink()
  final = tmp_path / "final_d6" / results.RESULTS
  final.write_text(final.read_text()[:40])
  with pytest.raises(results.WorkdirError, match=(
      rf"^{final}: unreadable \(JSONDecodeError: .*\); remove "
      rf"{tmp_path / 'final_d6'} to run it again, or pass --overwrite")):
    tuning.run(config, tmp_path)
  assert calls == [6]


class _Killed(Exception):
  pass


@pytest.mark.slow
def test_interrupted_sweep_resumes_from_checkpoints_to_the_same_record(
    split_dirs, tmp_path, monkeypatch):
  config = tiny_config(split_dirs, num_negatives=(1,), points_per_program=4)
  config.final.dims = (4,)
  whole = tuning.run(config, tmp_path / "whole")
  cell = "tune model=mf d=4 m=1"
  expected = sweep.done_cells(tmp_path / "whole")[cell]
  # Killed right after the 3rd checkpoint: program 2 (points 5-8), epoch 2.
  saves, real_save = [], checkpoints.Checkpointer.save

  def save_then_die(self, step, state, meta):
    real_save(self, step, state, meta)
    saves.append((self.directory.name, step))
    if len(saves) == 3:
      raise _Killed

  monkeypatch.setattr(checkpoints.Checkpointer, "save", save_then_die)
  with pytest.raises(_Killed):
    tuning.run(config, tmp_path / "cut")
  assert saves[-1] == ("tune_mf_d4_m1_points5-8", 2)
  assert cell not in sweep.done_cells(tmp_path / "cut")
  # The rerun trains only what is missing: program 1 is restored at its
  # final epoch, program 2 at epoch 2.
  monkeypatch.setattr(checkpoints.Checkpointer, "save", real_save)
  runs = []
  real_train = tuning._train_points
  monkeypatch.setattr(tuning, "_train_points", lambda *a, **k: runs.append(
      a[4]) or real_train(*a, **k))
  resumed = tuning.run(config, tmp_path / "cut")
  got = sweep.done_cells(tmp_path / "cut")[cell]
  assert got["points"] == expected["points"]
  assert got["failed_at_epoch"] == expected["failed_at_epoch"]
  for a, b in zip(expected["curves"], got["curves"]):
    assert a == b  # bit-identical on CPU: epochs, HR, NDCG, loss
  assert resumed["selected"] == whole["selected"]
  assert len(runs) == 2
  # Recorded cells leave no checkpoints of the sweep behind.
  assert not list((tmp_path / "cut" / results.CHECKPOINTS).glob("tune_*"))


def test_diverging_points_fail_alone(split_dirs):
  config = tiny_config(split_dirs, learning_rates=(0.05, 1e4), regs=(0.0,),
                       num_negatives=(1,))
  record = tuning.tune_shape(config, datasets.load_dataset(config.data), "mf",
                             4, 1)
  lrs = [p["learning_rate"] for p in record["points"]]
  failed = [f > 0 for f in record["failed_at_epoch"]]
  assert failed == [lr == 1e4 for lr in lrs]
  assert search_space.select([record])["learning_rate"] == 0.05


def test_bad_config_or_data_fails_before_writing(split_dirs, tmp_path):
  config = tiny_config(split_dirs, learning_rates=(-0.1,))
  with pytest.raises(checks.ConfigError, match="sweep.learning_rates"):
    tuning.run(config, tmp_path / "a")
  config = tiny_config(split_dirs)
  config.final.data.dir = str(tmp_path / "nowhere")
  with pytest.raises(data.DataError, match="missing"):
    tuning.run(config, tmp_path / "b")
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("fields, message", [
    # Scored on more candidates than there are, every point got HR 1.0,
    # selected, then refused after the whole sweep.
    ({"eval.k": 101}, r"eval\.k=101: must be <= the 100 ranked candidates"),
    ({"eval.full_ranking": True, "eval.full_ranking_ks": (201,)},
     r"eval\.full_ranking_ks=\(201,\): must be <= the dataset's 200 items"),
    # The final data's fields, named as such (a traceback before).
    ({"final.data.seed": -1}, r"^config field final\.data\.seed=-1: "),
    ({"final.data.format": "foo"}, r"^config field final\.data\.format="),
    # A program's points are its seeds: 8 points x 10^7 x d = 4.
    ({"sweep.dims": (10**7,)}, r"model\.dim=10000000.*GiB"),
    # NeuMF is d = 3k: its final run at d = 4 failed after the sweep, had
    # NeuMF won.
    ({"sweep.models": ("mf", "neumf"), "sweep.dims": (6,)},
     r"final\.dims=\(4, 6\): d = 4: neumf: must be a multiple of 3"),
])
def test_what_the_data_cannot_hold_is_refused_before_the_sweep(
    split_dirs, tmp_path, fields, message):
  config = tiny_config(split_dirs)
  for field, value in fields.items():
    *path, name = field.split(".")
    section = config
    for part in path:
      section = section[part]
    section[name] = value
  with pytest.raises(checks.ConfigError, match=message):
    tuning.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


def test_point_epochs_saved_by_a_shape_s_checkpoints(tmp_path):
  folder = tmp_path / "checkpoints"
  for program, steps in (("tune_mf_d8_m4_points1-3", (16, 32)),
                         ("tune_mf_d8_m4_points4-5_padded6", (8,)),
                         ("tune_mf_d8_m4_points6-9", ()),  # nothing saved
                         ("tune_mf_d16_m4_points1-3", (64,)),  # another d
                         ("tune_mf_d8_m4_points1-3.unreadable", (48,))):
    (folder / program).mkdir(parents=True)
    for step in steps:
      (folder / program / str(step)).mkdir()
  # Points 1-3 at epoch 32, points 4-5 (padded to 6) at epoch 8.
  assert tuning.point_epochs_saved(tmp_path, "mf", 8, 4) == 3 * 32 + 2 * 8
  assert tuning.point_epochs_saved(tmp_path, "mf", 32, 4) == 0


@pytest.mark.parametrize("field, value, message", [
    ("final.dims", (64, 0), r"final\.dims=\(64, 0\): needs whole numbers"),
    ("sweep.dims", (0,), r"sweep\.dims=\(0,\): needs whole numbers"),
    ("sweep.num_negatives", (4, 0), r"sweep\.num_negatives=\(4, 0\)"),
    ("final.dims", (1,), r"final\.dims=\(1,\): d = 1: must be >= 2"),
    ("sweep.dims", (1,), r"sweep\.dims=\(1,\): d = 1: must be >= 2"),
    # Infinite values trained as points that diverge, or fit nothing.
    ("sweep.learning_rates", (0.01, float("inf")),
     r"sweep\.learning_rates=\(0\.01, inf\): must be finite and > 0"),
    ("sweep.regs", (float("nan"),), r"sweep\.regs=\(nan,\): needs finite"),
])
def test_a_d_or_m_the_model_cannot_take_names_its_field(split_dirs, tmp_path,
                                                        field, value,
                                                        message):
  # 0 once read as "no d": the model's own d trained, recorded as d = 0.
  config = tiny_config(split_dirs)
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(checks.ConfigError, match=message):
    tuning.run(config, tmp_path / "w")
  assert not (tmp_path / "w").exists()


_SHARDED = """
import json, sys
import jax
from dot_vs_learned import datasets, distributed, tuning
sys.path.insert(0, {tests!r})
import tuning_test
config = tuning_test.tiny_config(__import__("pathlib").Path({root!r}),
                                 **{overrides!r})
d = datasets.load_dataset(config.data)
record = tuning.tune_shape(config, d, "mf", 4, 2, workdir={workdir!r})
print(json.dumps(dict(devices=record["devices"], count=jax.device_count(),
                      padded=[distributed.padded_count(n) for n in range(1, 10)],
                      points=record["points"], curves=record["curves"],
                      failed=record["failed_at_epoch"])))
"""


@pytest.mark.slow
@pytest.mark.parametrize("devices, overrides, used, padded", [
    # 2 lr x 2 lambda x 2 seeds: 8 points, 2 on each device.
    (4, {}, 4, [1, 2, 3, 4, 8, 8, 8, 8, 12]),
    # 3 points, padded to 4 (the 4th repeats the 3rd), 2 on each device.
    (2, dict(learning_rates=(0.003, 0.02, 0.05), regs=(0.0,), num_seeds=1),
     2, [1, 2, 4, 4, 6, 6, 8, 8, 10]),
])
def test_sharded_over_host_devices_equals_one_device(split_dirs, tmp_path,
                                                     devices, overrides,
                                                     used, padded):
  config = tiny_config(split_dirs, **overrides)
  single = tuning.tune_shape(config, datasets.load_dataset(config.data), "mf", 4,
                             2)
  env = dict(os.environ,
             XLA_FLAGS=f"{os.environ['XLA_FLAGS']} "
             f"--xla_force_host_platform_device_count={devices}",
             JAX_PLATFORMS="cpu")
  out = subprocess.run(
      [sys.executable, "-c", _SHARDED.format(
          tests=str(REPO / "tests"), root=str(split_dirs),
          overrides=overrides, workdir=str(tmp_path))],
      capture_output=True, text=True, env=env, cwd=REPO, check=True)
  sharded = json.loads(out.stdout.splitlines()[-1])
  assert sharded["count"] == devices and sharded["devices"] == used
  assert sharded["padded"] == padded
  assert single["devices"] == 1
  # The padding points are dropped: the record has the grid's points.
  assert sharded["points"] == single["points"]
  assert sharded["failed"] == single["failed_at_epoch"]
  # Same metrics; the summed epoch loss may differ in the last float32 bits
  # (another reduction order on another device layout).
  for a, b in zip(single["curves"], sharded["curves"], strict=True):
    assert len(b["hr"]) == len(single["points"])
    np.testing.assert_array_equal(a["hr"], b["hr"])
    np.testing.assert_array_equal(a["ndcg"], b["ndcg"])
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
  # The padded program checkpointed under a name that says so.
  names = [p.name for p in (tmp_path / "checkpoints").iterdir()]
  suffix = "_padded4" if overrides else ""
  assert names == [f"tune_mf_d4_m2_points1-{len(single['points'])}{suffix}"]


@pytest.mark.slow  # 12 s; an equivalence the quick sweep tests rely on
def test_points_in_smaller_programs_give_the_same_record(split_dirs):
  config = tiny_config(split_dirs, regs=(0.0,))
  d = datasets.load_dataset(config.data)
  whole = tuning.tune_shape(config, d, "mf", 4, 1)
  config.sweep.points_per_program = 3  # 4 points: programs of 3 and 1
  parts = tuning.tune_shape(config, d, "mf", 4, 1)
  assert whole["points"] == parts["points"]
  for a, b in zip(whole["curves"], parts["curves"]):
    assert a["epoch"] == b["epoch"]
    np.testing.assert_allclose(a["hr"], b["hr"], atol=1e-6)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)


def test_final_runs_evaluate_as_the_sweep_did_or_every_final_every():
  config = tuning_config.default_config()
  config.eval.every = 256  # the paper's protocol: select 256 epochs
  chosen = dict(model="mf", dim=64, num_negatives=8, learning_rate=0.002,
                reg=0.005, init_stddev=0.1, epochs=256)
  final = tuning.final_config(config, chosen, 192)
  assert (final.model.dim, final.train.epochs, final.eval.every) == (
      192, 256, 256)
  assert (final.train.learning_rate, final.train.num_negatives) == (0.002, 8)
  config.final.every = 16  # curves and checkpoints every 16 epochs
  assert tuning.final_config(config, chosen, 192).eval.every == 16


def test_the_paper_commands_final_runs_are_the_plain_runs_of_each_d():
  # runs/README.md trains Figure 2 as one plain run of configs/movielens.py
  # per d, so that each can finish within a session: they are the final
  # runs of configs/tune_movielens.py:paper, field for field.
  configs = pathlib.Path(__file__).parents[1] / "configs"
  paper = config_help.load(f"{configs / 'tune_movielens.py'}:paper")
  [(model, dim, negatives)] = search_space.shapes(paper)
  [point] = search_space.points(paper, model)
  chosen = dict(model=model, dim=dim, num_negatives=negatives,
                **search_space.hyperparameters(point),
                epochs=paper.train.epochs)
  assert (chosen["learning_rate"], chosen["reg"], negatives,
          chosen["epochs"]) == (0.002, 0.005, 8, 256)
  for dim in (16, 32, 64, 96, 128, 192):
    plain = config_help.load(str(configs / "movielens.py"))
    plain.model.dim, plain.train.num_seeds = dim, 8
    final = tuning.final_config(paper, chosen, dim)
    assert config_help.flatten(final.to_dict()) == config_help.flatten(
        plain.to_dict()), dim
  assert paper.final.dims == (16, 32, 64, 96, 128, 192)


def _tune_gowalla(arg):
  path = pathlib.Path(__file__).parents[1] / "configs" / "tune_gowalla.py"
  return config_help.load(f"{path}:{arg}")


def test_tune_gowalla_grids():
  mf = _tune_gowalla("mf")
  search_space.validate(mf)
  assert search_space.shapes(mf) == [("mf", 64, 8)]
  assert len(search_space.points(mf, "mf")) == 6  # 2 lr x 3 lambda
  negatives = _tune_gowalla("mf_negatives")
  search_space.validate(negatives)
  # One program per m, each of mf's lr with 3 lambdas.
  assert search_space.shapes(negatives) == [("mf", 64, 16), ("mf", 64, 32)]
  assert sorted(p["reg"] for p in search_space.points(negatives, "mf")) == [
      0.005, 0.01, 0.02]
  assert {p["learning_rate"] for p in search_space.points(negatives, "mf")
          } == {0.03}
  more = _tune_gowalla("mf_more_negatives")
  search_space.validate(more)
  assert search_space.shapes(more) == [("mf", 64, 64)]
  assert sorted(p["reg"] for p in search_space.points(more, "mf")) == [
      0.00125, 0.0025, 0.005]
  assert more.train.epochs == 96 and more.eval.every == 8
  assert more.final.dims == (64, 128)
  assert search_space.shapes(_tune_gowalla("ease")) == [("ease", 0, 0)]
  with pytest.raises(ValueError, match="tune_gowalla.py:gmf: 'mf'"):
    _tune_gowalla("gmf")
