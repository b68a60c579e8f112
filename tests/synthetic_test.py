"""Tests of the §4 synthetic grid: generator, trainer, resumable grid."""

import json
import re

import jax
import numpy as np
import pytest

from dot_vs_learned import checkpoints
from dot_vs_learned import checks
from dot_vs_learned import results
from dot_vs_learned import sweep
from dot_vs_learned import synthetic
from dot_vs_learned import synthetic_config
from dot_vs_learned import synthetic_data


def _config(**overrides):
  config = synthetic.default_config()
  config.synthetic.update(dims=(4,), nums_users=(200,), multipliers=(1,),
                          num_seeds=2, epochs=1, num_fresh=1000,
                          eval_chunk=4096)
  config.synthetic.update(overrides)
  return config


def test_cell_reports_dot_and_zero_rmse_near_0_85_and_1_13():
  record = synthetic.train_cell(1000, 8, 1, _config(epochs=1).synthetic)
  for split in ("test", "fresh"):
    assert record[f"dot_{split}"]["mean"] == pytest.approx(0.85, abs=0.02)
    assert record[f"zero_{split}"]["mean"] == pytest.approx(1.13, abs=0.03)
    np.testing.assert_allclose(
        record[f"error_{split}"]["per_seed"],
        np.subtract(record[f"mlp_{split}"]["per_seed"],
                    record[f"dot_{split}"]["per_seed"]), atol=1e-6)
  assert record["hidden"] == [16, 8, 4] and record["seeds"] == 2


def test_mlp_learns_a_two_dimensional_dot_product():
  c = _config(epochs=12, num_seeds=1, pairs_per_user=100).synthetic
  record = synthetic.train_cell(1500, 2, 4, c)
  assert record["zero_test"]["mean"] > 1.1
  # Near the noise floor 0.85: the MLP explains almost all of <p, q>.
  assert record["error_test"]["mean"] < 0.02
  assert record["error_fresh"]["mean"] < 0.02


@pytest.mark.slow  # several trainings
def test_vmapped_seeds_equal_seed_by_seed_training():
  c = _config().synthetic
  data = synthetic_data.stack_seeds(300, 4, c)
  init, epoch, _ = synthetic.make_cell_programs(4, 1, data.train.shape[1], c)
  keys = jax.random.split(jax.random.key(0), 2)
  states, losses = jax.jit(jax.vmap(epoch))(jax.vmap(init)(keys), data)
  init_one, epoch_one = jax.jit(init), jax.jit(epoch)  # not op by op
  for s in range(2):
    one = jax.tree.map(lambda x: x[s], data)
    state, loss = epoch_one(init_one(keys[s]), one)
    np.testing.assert_allclose(loss, losses[s], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(state.params),
                    jax.tree.leaves(jax.tree.map(lambda x: x[s],
                                                 states.params))):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_grid_records_cells_and_resumes_without_recomputing(tmp_path,
                                                            monkeypatch):
  config = _config(nums_users=(200, 300))
  first = synthetic.run(config, tmp_path)
  assert [r["cell"] for r in first["cells"]] == [
      "d=4,M=200,multiplier=1", "d=4,M=300,multiplier=1"]
  assert (tmp_path / "synthetic.md").read_text().count("\n") == 4
  # Kill after the first cell: drop the second record and the results, and
  # leave a half-written line behind.
  lines = (tmp_path / sweep.CELLS).read_text().splitlines()
  (tmp_path / sweep.CELLS).write_text(lines[0] + "\n" + lines[1][:20])
  (tmp_path / results.RESULTS).unlink()
  trained = []
  real = synthetic.train_cell
  monkeypatch.setattr(synthetic, "train_cell",
                      lambda m, *a, **k: trained.append(m) or real(m, *a, **k))
  second = synthetic.run(config, tmp_path)
  assert trained == [300]  # only the unrecorded cell ran again
  for a, b in zip(first["cells"], second["cells"]):
    assert a["mlp_test"]["per_seed"] == pytest.approx(b["mlp_test"]["per_seed"])
  assert len(sweep.done_cells(tmp_path)) == 2


class _Killed(Exception):
  pass


@pytest.mark.slow
def test_a_cell_killed_midway_resumes_to_the_same_record(tmp_path,
                                                         monkeypatch):
  config = _config(epochs=5)
  config.checkpoint.every = 2
  whole = synthetic.run(config, tmp_path / "whole")["cells"][0]
  saves, real_save = [], checkpoints.Checkpointer.save

  def save_then_die(self, step, state, meta):
    real_save(self, step, state, meta)
    saves.append(step)
    if step == 4:
      raise _Killed

  monkeypatch.setattr(checkpoints.Checkpointer, "save", save_then_die)
  with pytest.raises(_Killed):
    synthetic.run(config, tmp_path / "cut")
  assert saves == [2, 4]
  monkeypatch.setattr(checkpoints.Checkpointer, "save", real_save)
  epochs = []
  monkeypatch.setattr(checkpoints.Checkpointer, "save",
                      lambda self, step, *a: epochs.append(step) or
                      real_save(self, step, *a))
  resumed = synthetic.run(config, tmp_path / "cut")["cells"][0]
  assert epochs == [5]  # only epoch 5 trained again
  timings = ("generate_s", "train_s", "samples_per_s")
  assert {k: v for k, v in resumed.items() if k not in timings} == {
      k: v for k, v in whole.items() if k not in timings}
  assert not (tmp_path / "cut" / results.CHECKPOINTS).exists() or not list(
      (tmp_path / "cut" / results.CHECKPOINTS).iterdir())


@pytest.mark.parametrize("field,value", [("every", -1), ("keep", 0)])
def test_bad_checkpoint_config_names_the_field(tmp_path, field, value):
  config = _config()
  config.checkpoint[field] = value
  with pytest.raises(checks.ConfigError, match=f"checkpoint.{field}"):
    synthetic.run(config, tmp_path / "grid")
  assert not (tmp_path / "grid").exists()


@pytest.mark.slow  # several trainings
def test_grid_refuses_a_finished_grid_or_another_config(tmp_path):
  synthetic.run(_config(), tmp_path)
  with pytest.raises(results.WorkdirError, match="finished run"):
    synthetic.run(_config(), tmp_path)
  (tmp_path / results.RESULTS).unlink()
  with pytest.raises(results.WorkdirError,
                     match=r"another config \(synthetic\.epochs: \d+ -> 2\)"):
    synthetic.run(_config(epochs=2), tmp_path)
  out = synthetic.run(_config(epochs=2), tmp_path, overwrite=True)
  assert out["cells"][0]["epochs"] == 2


@pytest.mark.slow  # a grid
def test_a_diverging_cell_is_marked_failed_and_the_grid_goes_on(
    tmp_path, monkeypatch):
  real = synthetic.train_cell

  def fake(num_users, *args, **kwargs):
    if num_users == 200:
      raise FloatingPointError("training diverged at epoch 1: loss [nan]")
    return real(num_users, *args, **kwargs)

  monkeypatch.setattr(synthetic, "train_cell", fake)
  out = synthetic.run(_config(nums_users=(200, 300)), tmp_path)
  assert out["failed"] == ["d=4,M=200,multiplier=1"]
  assert "error" not in out["cells"][1]
  assert "failed: training diverged" in (tmp_path / "synthetic.md").read_text()


@pytest.mark.parametrize("field, value", [
    ("dims", ()), ("multipliers", (0,)), ("pairs_per_user", 201),
    ("train_fraction", 1.0), ("learning_rate", -1.0), ("label_noise", 1.2),
    # No training pair, or no test pair, at M = 200: a traceback before.
    ("train_fraction", 0.00001), ("train_fraction", 0.99999)])
def test_bad_config_names_the_field_and_writes_nothing(tmp_path, field, value):
  with pytest.raises(checks.ConfigError, match=f"synthetic.{field}="):
    synthetic.run(_config(**{field: value}), tmp_path / "grid")
  assert not (tmp_path / "grid").exists()


@pytest.mark.parametrize("field, value, requirement", [
    ("seed", -1, "must be a whole number in [0, 2147483647]"),
    ("multipliers", (1.25,), "multiplier * d / 2 must be a whole number for "
     "every d in synthetic.dims=(4,) (h = multiplier * d / 2 units)"),
    ("learning_rate", float("inf"), "must be a finite number"),
    ("epochs", 10**8, "must be <= 100000 (synthetic_config.MAX_EPOCHS)"),
    ("dims", ("a",), "needs whole numbers >= 1"),
    ("dims", (4.5,), "needs whole numbers >= 1"),
    ("nums_users", (200, None), "needs whole numbers >= 1"),
    ("multipliers", (True,), "needs finite numbers > 0"),
    ("nums_users", (10**8,), "synthetic.pairs_per_user=100 x M = "
     "10000000000 pairs must stay below 2^31 (int32 positions)")])
def test_bad_value_is_one_line_naming_the_field(tmp_path, field, value,
                                                requirement):
  message = f"config field synthetic.{field}={value!r}: {requirement}"
  with pytest.raises(checks.ConfigError, match=f"^{re.escape(message)}$"):
    synthetic.run(_config(**{field: value}), tmp_path / "grid")
  assert not (tmp_path / "grid").exists()


@pytest.mark.parametrize("overrides, cell", [
    (dict(num_seeds=10**8, pairs_per_user=10), "d=4, M=200"),
    (dict(nums_users=(200, 10**8), pairs_per_user=10), "d=4, M=100000000")])
def test_a_grid_too_big_for_memory_is_refused_before_allocating(
    tmp_path, monkeypatch, overrides, cell):
  monkeypatch.setattr(synthetic_data, "stack_seeds", None)  # never reached
  config = _config(**overrides)
  c = config.synthetic
  fields = ", ".join(f"synthetic.{f}={c[f]!r}" for f in (
      "nums_users", "dims", "num_seeds", "pairs_per_user", "num_fresh"))
  with pytest.raises(checks.ConfigError, match=(
      f"^config fields {re.escape(fields)}: the cell {cell}, multiplier=1 "
      r"needs about \d+\.\d GiB of (host|device) memory, more than 90% of "
      r"its \d+\.\d GiB$")):
    synthetic.run(config, tmp_path / "grid")
  assert not (tmp_path / "grid").exists()


def test_memory_estimate_counts_seeds_and_pairs():
  c = _config(num_seeds=1, pairs_per_user=10, num_fresh=100).synthetic
  host, device = synthetic_config.cell_bytes(200, 4, 1, c)
  data = 4 * (2 * 200 * 4 + 3 * 2000 + 9 * 100)
  assert host == 2 * data + 48 * 2000
  c.num_seeds = 3
  assert synthetic_config.cell_bytes(200, 4, 1, c) == (
      6 * data + 48 * 2000, 3 * device)


def test_a_fractional_multiplier_giving_whole_units_trains(tmp_path):
  assert synthetic.hidden_sizes(4, 1.5) == (12, 6, 3)
  assert all(type(h) is int for h in synthetic.hidden_sizes(4, 1.5))
  out = synthetic.run(_config(multipliers=(1.5,), num_seeds=1,
                              pairs_per_user=10, num_fresh=100), tmp_path)
  assert out["cells"][0]["hidden"] == [12, 6, 3] and not out["failed"]


def test_full_grid_estimate_sums_cells():
  config = _config(dims=(4, 8), nums_users=(100, 200), epochs=2, num_seeds=5)
  rates = {(4, 1): 1000.0, (8, 1): 500.0}
  samples = 5 * 0.9 * 100 * (100 + 200) * 2  # per shape
  assert synthetic.full_grid_estimate(config, rates) == pytest.approx(
      samples / 1000 + samples / 500)


def test_results_json_lists_cells(tmp_path):
  synthetic.run(_config(), tmp_path)
  saved = json.loads((tmp_path / results.RESULTS).read_text())
  assert saved["failed"] == [] and len(saved["cells"]) == 1
