"""iALS and EASE^R through the entry point's paths (dot_baselines.py, ncf.py,
recommend.py, tuning.py): their results checked against numpy."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import checks
from dot_vs_learned import datasets
from dot_vs_learned import ease as ease_lib
from dot_vs_learned import ials
from dot_vs_learned import models
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import recommend
from dot_vs_learned import results
from dot_vs_learned import search_space
from dot_vs_learned import sweep
from dot_vs_learned import tuning
from dot_vs_learned import tuning_config

import tuning_test  # pylint: disable=g-bad-import-order


def _config(name, **train):
  config = ncf_config.default_config()
  config.data.update(num_users=120, num_items=150)
  config.model.update(name=name, dim=6)
  config.train.update(epochs=3, num_seeds=2, **train)
  config.eval.update(every=2, full_ranking_ks=(5, 10))
  return config


@pytest.fixture(scope="module")
def ials_run(tmp_path_factory):
  config = _config("ials", reg=0.05)
  config.ials.alpha0 = 0.2
  workdir = tmp_path_factory.mktemp("ials")
  return config, workdir, ncf.run(config, workdir)


@pytest.fixture(scope="module")
def ease_run(tmp_path_factory):
  config = _config("ease", reg=20.0)
  workdir = tmp_path_factory.mktemp("ease")
  return config, workdir, ncf.run(config, workdir)


def _numpy_metrics(scores_UxI, data, k):
  """Sampled HR@k and full-ranking HR@k in numpy (pessimistic ties)."""
  users = np.arange(data.num_users)
  test = scores_UxI[users, data.test_items]
  sampled = np.take_along_axis(scores_UxI, data.test_negatives, axis=1)
  sampled_rank = np.sum((sampled >= test[:, None]) &
                        (data.test_negatives != data.test_items[:, None]),
                        axis=1)
  full = scores_UxI.copy()
  full[data.train_users, data.train_items] = -np.inf
  full[users, data.test_items] = -np.inf  # not its own competitor
  full_rank = np.sum(full >= test[:, None], axis=1)
  return np.mean(sampled_rank < k), np.mean(full_rank < k)


@pytest.mark.slow  # an iALS run
def test_ials_run_records_its_loss_and_metrics(ials_run):
  config, workdir, out = ials_run
  final = out["final"]
  assert final["epoch"] == 3 and len(final["hr@10"]["per_seed"]) == 2
  flat = results.load_params(workdir)
  assert sorted(flat) == ["ials/item", "ials/user"]
  assert flat["ials/user"].shape == (2, 120, 6)
  data = datasets.load_dataset(config.data)
  model = ials.make_ials(data.num_users, data.num_items, data.train_users,
                         data.train_items, 6, 0.05, 0.2)
  for seed in range(2):
    params = models.DotParams(jnp.asarray(flat["ials/user"][seed]),
                              jnp.asarray(flat["ials/item"][seed]))
    # The recorded loss is the objective at the saved factors.
    np.testing.assert_allclose(
        final["loss"]["per_seed"][seed],
        float(ials.loss(params, model.data, model.hparams)), rtol=1e-4)
    scores = flat["ials/user"][seed] @ flat["ials/item"][seed].T
    sampled_hr, full_hr = _numpy_metrics(scores, data, 10)
    assert final["hr@10"]["per_seed"][seed] == pytest.approx(sampled_hr)
    assert final["full/hr@10"]["per_seed"][seed] == pytest.approx(full_hr)
  assert not (workdir / results.CHECKPOINTS).exists()
  assert "| ials.alpha0 | 0.2 |" in (workdir / "summary.md").read_text()


@pytest.mark.slow  # an iALS run
def test_ials_seed_i_trains_from_key_i_of_the_split(ials_run):
  config, workdir, _ = ials_run
  # Seed i of a run starts from split(key(train.seed), n)[i], as MF's do.
  data = datasets.load_dataset(config.data)
  model = ials.make_ials(data.num_users, data.num_items, data.train_users,
                         data.train_items, 6, 0.05, 0.2)
  key = jax.random.split(jax.random.key(0), 2)[1]
  state = ials.init(key, data.num_users, data.num_items, 6, 0.1)
  for _ in range(3):
    state, _ = model.epoch(state, model.data, model.hparams)
  np.testing.assert_allclose(results.load_params(workdir)["ials/user"][1],
                             np.asarray(state.params.user), atol=2e-5)


def test_ease_run_is_the_closed_form(ease_run):
  config, workdir, out = ease_run
  data = datasets.load_dataset(config.data)
  x = np.zeros((data.num_users, data.num_items))
  x[data.train_users, data.train_items] = 1.0
  p = np.linalg.inv(x.T @ x + 20.0 * np.eye(data.num_items))
  b = np.eye(data.num_items) - p / np.diag(p)[None, :]
  flat = results.load_params(workdir)
  # B^T (row i = column i of B) and diag(P), by which the full ranking
  # scores from B^T's rows at each history.
  assert sorted(flat) == ["ease/diag", "ease/weights_t"]
  np.testing.assert_allclose(flat["ease/weights_t"][0], b.T, atol=2e-5)
  np.testing.assert_allclose(flat["ease/diag"][0], np.diag(p), rtol=1e-5)
  final = out["final"]
  sampled_hr, full_hr = _numpy_metrics(x @ b, data, 10)
  assert final["epoch"] == 0 and out["num_seeds"] == 1
  assert final["hr@10"]["per_seed"] == [pytest.approx(sampled_hr)]
  assert final["full/hr@10"]["per_seed"] == [pytest.approx(full_hr)]
  summary = (workdir / "summary.md").read_text()
  assert summary.startswith("# ease on default\n\nClosed form")


def test_ease_in_place_when_the_device_is_small(ease_run, tmp_path,
                                                monkeypatch):
  config, workdir, out = ease_run
  data = datasets.load_dataset(config.data)
  from dot_vs_learned import dot_baselines  # pylint: disable=g-import-not-at-top
  assert not dot_baselines.ease_in_place(data)
  # Room for one fit (4 I^2 floats with X), not for a grid's
  # eigendecomposition (6 I^2): the grid fits each lambda.
  room = 4 * (5 * data.num_items**2 + data.num_users * data.num_items)
  monkeypatch.setattr(checks, "available_bytes", lambda: room)
  assert dot_baselines.ease_in_place(data, grid=True)
  assert not dot_baselines.ease_in_place(data)
  # A device too small for JAX's fit, not for B.
  small = 4 * (3 * data.num_items**2 + data.num_users * data.num_items)
  monkeypatch.setattr(checks, "available_bytes", lambda: small)
  assert dot_baselines.ease_in_place(data)
  if jax.default_backend() == "cpu":
    # fit_ease hands the in-place buffer over with its seed axis, uncopied.
    buffers, real_fit = [], ease_lib.fit_in_place

    def fit_in_place(g, reg):
      buffers.append(g.ctypes.data)
      return real_fit(g, reg)

    monkeypatch.setattr(ease_lib, "fit_in_place", fit_in_place)
    params, _ = dot_baselines.fit_ease(config, data)
    assert params.weights_t.shape == (1, data.num_items, data.num_items)
    assert params.weights_t.unsafe_buffer_pointer() == buffers[0]
    monkeypatch.setattr(ease_lib, "fit_in_place", real_fit)
  in_place = ncf.run(config, tmp_path / "ease")
  np.testing.assert_allclose(
      results.load_params(tmp_path / "ease")["ease/weights_t"],
      results.load_params(workdir)["ease/weights_t"], atol=2e-5)
  for name in ("hr@10", "full/hr@10", "full/ndcg@10"):
    assert in_place["final"][name]["mean"] == pytest.approx(
        out["final"][name]["mean"], abs=1e-6)
  # The lambda grid: one in-place fit per lambda, the same metrics as one
  # eigendecomposition's.
  done = tmp_path / "ease_grid.jsonl"
  grid = dot_baselines.ease_grid([5.0, 20.0], data, config, done)
  assert [r["reg"] for r in results.read_json_lines(done)] == [5.0, 20.0]
  # A rerun fits only the lambdas not recorded.
  fitted = []
  real = dot_baselines._ease_weights
  monkeypatch.setattr(dot_baselines, "_ease_weights",
                      lambda d, reg: fitted.append(reg) or real(d, reg))
  again = dot_baselines.ease_grid([5.0, 10.0, 20.0], data, config, done)
  assert fitted == [10.0]
  np.testing.assert_array_equal(again["hr"][[0, 2]], grid["hr"])
  monkeypatch.undo()
  eigen = dot_baselines.ease_grid([5.0, 20.0], data, config)
  assert sorted(grid) == ["hr", "ndcg", "rank"]
  for name in grid:
    np.testing.assert_allclose(grid[name], eigen[name], atol=1e-6)
  assert grid["hr"][1] == pytest.approx(out["final"]["hr@10"]["mean"])


@pytest.mark.parametrize(
    "which", [pytest.param("ials", marks=pytest.mark.slow), "ease"])
def test_recommend_serves_both(request, which):
  # Only the run asked for: the quick EASE^R case trains no iALS.
  config, workdir, _ = request.getfixturevalue(f"{which}_run")
  flat = results.load_params(workdir)
  data = datasets.load_dataset(config.data)
  if which == "ials":
    scores = flat["ials/user"][1] @ flat["ials/item"][1].T
  else:
    x = np.zeros((data.num_users, data.num_items), np.float32)
    x[data.train_users, data.train_items] = 1.0
    scores = x @ flat["ease/weights_t"][0].T
  users = [3, 50, 3]  # a repeat: EASE^R builds the asked histories only
  seed = 1 if which == "ials" else 0
  _, got_scores, got_ids = recommend.recommend_from_workdir(
      workdir, users, 4, seed_index=seed)
  for row, user in enumerate(users):
    row_scores = scores[user].copy()
    row_scores[data.train_items[data.train_users == user]] = -np.inf
    want = np.argsort(-row_scores, kind="stable")[:4]
    np.testing.assert_array_equal(got_ids[row], want)
    np.testing.assert_allclose(got_scores[row], row_scores[want], atol=1e-4)


@pytest.mark.parametrize("field, value, message", [
    ("train.reg", 0.0, "ials: must be > 0"),
    ("ials.alpha0", -1.0, "must be finite and >= 0"),
    ("ials.nu", float("nan"), "must be finite and >= 0")])
def test_bad_ials_fields_are_refused(tmp_path, field, value, message):
  config = _config("ials", reg=0.05)
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(checks.ConfigError, match=f"{field}.*{message}"):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.slow  # an iALS run
def test_tuning_selects_ease_lambda_and_ials_alpha0_on_the_tuning_split(
    tmp_path):
  split_dirs = tuning_test.make_split_dirs(tmp_path / "data")
  config = tuning_test.tiny_config(split_dirs)
  config.sweep.update(models=("ease", "ials"), dims=(4,), num_seeds=1)
  config.sweep.ials.update(regs=(0.05,), alpha0s=(0.0, 0.5))
  config.sweep.ease.update(regs=(1.0, 30.0, 1000.0))
  config.train.epochs = 2
  config.final.update(dims=(4,), num_seeds=1)
  out = tuning.run(config, tmp_path / "tune")
  cells = {r["model"]: r for r in sweep.done_cells(tmp_path / "tune").values()}
  assert [p["reg"] for p in cells["ease"]["points"]] == [1.0, 30.0, 1000.0]
  assert [p["alpha0"] for p in cells["ials"]["points"]] == [0.0, 0.5]
  # The selection is the best tuning HR of any model, point and epoch.
  best = max((c["hr"][j], c["ndcg"][j], r["model"])
             for r in cells.values() for c in r["curves"]
             for j in range(len(r["points"])))
  chosen = out["selected"]
  assert (chosen["tuning_hr@10"], chosen["model"]) == (
      pytest.approx(best[0]), best[2])
  folder = tuning.final_runs(config, chosen)
  assert list(out["final"]) == [str(d) for d in folder]
  final_dir = tmp_path / "tune" / next(iter(folder.values()))
  run_config = json.loads((final_dir / results.CONFIG).read_text())
  assert run_config["model"]["name"] == chosen["model"]
  assert run_config["train"]["reg"] == chosen["reg"]
  if chosen["model"] == "ials":
    assert run_config["ials"]["alpha0"] == chosen["alpha0"]


def test_search_space_points_per_model():
  config = tuning_config.default_config()
  config.sweep.update(num_seeds=2, dims=(8, 16), num_negatives=(4, 8),
                      models=("mf", "ials", "ease"))
  assert search_space.shapes(config) == [
      ("mf", 8, 4), ("mf", 8, 8), ("mf", 16, 4), ("mf", 16, 8),
      ("ials", 8, 0), ("ials", 16, 0), ("ease", 0, 0)]
  config.sweep.ials.nus = (0.5, 1.0)
  ials_points = search_space.points(config, "ials")
  # lambda x alpha0 x nu x sigma x seed
  assert len(ials_points) == 4 * 3 * 2 * 1 * 2
  assert ials_points[3] == {"reg": 0.001, "alpha0": 0.1, "nu": 1.0,
                            "init_stddev": 0.1, "seed": 1}
  assert search_space.points(config, "ease")[0] == {"reg": 100.0, "seed": 0}
  run = ncf_config.default_config()
  search_space.apply(run, {"reg": 0.5, "alpha0": 2.0, "nu": 0.5,
                           "epochs": 3})
  assert (run.train.reg, run.ials.alpha0, run.ials.nu,
          run.train.epochs) == (0.5, 2.0, 0.5, 256)


@pytest.mark.parametrize("models", [("popularity",), ("mf", "nope"), ()])
def test_sweep_models_outside_the_tunable_ones_are_refused(models):
  config = tuning_config.default_config()
  config.sweep.models = models
  with pytest.raises(checks.ConfigError, match=r"sweep\.models.*needs values "
                     "among"):
    search_space.validate(config)


@pytest.mark.parametrize("section, name, values, message", [
    ("ials", "regs", (0.007, float("inf")), r"sweep\.ials\.regs=\(0\.007, inf"
     r"\): needs finite values > 0"),
    ("ials", "alpha0s", (-0.1,), r"sweep\.ials\.alpha0s=\(-0\.1,\): needs "
     "finite values >= 0"),
    ("ials", "nus", (), r"sweep\.ials\.nus=\(\): needs finite values >= 0"),
    ("ease", "regs", (float("nan"),), r"sweep\.ease\.regs=\(nan,\): needs "
     "finite values > 0"),
])
def test_baseline_grids_out_of_range_name_their_field(section, name, values,
                                                      message):
  config = tuning_config.default_config()
  config.sweep[section][name] = values
  with pytest.raises(checks.ConfigError, match=message):
    search_space.validate(config)
