"""Tests of the recommend CLI (recommend.py): flags checked against the model.

The run is built directly (configs/test.py's config, MF parameters of 2
seeds, results.json) so that no training is needed; serving_test.py serves a
run that ncf.run trained. Every bad flag value or workdir gives a one-line
error naming the flag, users and k are checked before the data is loaded.
"""

import importlib.util
import json
import pathlib
import re
import shutil
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import recommend
from dot_vs_learned import results
from dot_vs_learned import workdir

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A finished MF run of configs/test.py: 200 users, 150 items, 2 seeds."""
  spec = importlib.util.spec_from_file_location("test_config",
                                                ROOT / "configs/test.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  workdir = tmp_path_factory.mktemp("run")
  rng = np.random.default_rng(0)
  normal = lambda *shape: rng.normal(size=shape).astype(np.float32)
  results.save_params(workdir, {"mf/user": normal(2, 200, 8),
                                "mf/item": normal(2, 150, 8),
                                "mf/bias": normal(2)})
  results.write_json(workdir / results.CONFIG, config.to_dict())
  results.write_json(workdir / results.RESULTS, {"model": "mf"})
  return workdir


def _expected_top(run, users, k, seed_index):
  """Eq. 2 in numpy: b + p_1 + q_1 + <p_2.., q_2..>, seen items last."""
  flat = results.load_params(run)
  user = flat["mf/user"][seed_index].astype(np.float64)
  item = flat["mf/item"][seed_index].astype(np.float64)
  scores = (flat["mf/bias"][seed_index] + user[:, :1] + item[:, 0] +
            user[:, 1:] @ item[:, 1:].T)[users]
  config = json.loads((run / results.CONFIG).read_text())
  d = datasets.load_dataset(config["data"])
  for row, u in enumerate(users):
    scores[row, d.train_items[d.train_users == u]] = -np.inf
  ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return np.take_along_axis(scores, ids, axis=1), ids


def _copy(run, copy, edit_config=None):
  """Copies the run to `copy`, its config.json changed by edit_config(dict)."""
  shutil.copytree(run, copy)
  if edit_config:
    config = json.loads((copy / results.CONFIG).read_text())
    edit_config(config)
    (copy / results.CONFIG).write_text(json.dumps(config))
  return copy


def _cli(*args):
  """recommend's main in this process: the SystemExit code, or 0."""
  argv = flags.FLAGS(["recommend", *args])
  try:
    recommend.main(argv)
  except SystemExit as e:
    return e.code
  finally:
    flags.FLAGS.unparse_flags()
  return 0


def test_users_are_checked_against_the_models_table(run, tmp_path):
  # The dataset the config names now has 260 users; the model has 200.
  def grow(config):
    config["data"]["num_users"] = 260
  grown = _copy(run, tmp_path / "grown", grow)
  with pytest.raises(recommend.RecommendError,
                     match=r"--users: \[230\] out of range; the model has "
                     r"users 0 \.\. 199"):
    recommend.recommend_from_workdir(grown, [5, 230], 3)
  with pytest.raises(recommend.RecommendError,
                     match="the model has 200 users and 150 items, its "
                     "dataset 'default' now 260 and 150: the data changed"):
    recommend.recommend_from_workdir(grown, [5], 3)
  # Checked before the data is loaded: data that cannot load is not reached.
  def lose_data(config):
    config["data"].update(name="gone", dir=str(tmp_path / "nowhere"))
  lost = _copy(run, tmp_path / "lost", lose_data)
  with pytest.raises(recommend.RecommendError, match=r"--users: \[200\]"):
    recommend.recommend_from_workdir(lost, [200], 3)


@pytest.mark.parametrize("users, message", [
    ("", "--users=: no user ids"),
    ("1,,2", r"--users=1,,2: \[''\] not integers"),
    ("3,x,1.5", r"--users=3,x,1.5: \['x', '1.5'\] not integers"),
    (str(10**30), r"--users: \[10000000000000000000\.\.\.\] out of range; "
     r"the model has users 0 \.\. 199"),
    ("9" * 5000, r"--users: \[99999999999999999999\.\.\.\] out of range"),
    ("4,-1,-100", r"--users: \[-1, -100\] out of range"),
    ("200", r"--users: \[200\] out of range"),
])
def test_bad_users_flag(run, users, message):
  code = _cli(f"--workdir={run}", f"--users={users}")
  assert code.startswith("error: ") and "\n" not in code
  assert re.search(message, code), code


@pytest.mark.parametrize("flag, message", [
    ("--k=0", "--k=0: must be >= 1"),
    ("--k=-3", "--k=-3: must be >= 1"),
    ("--k=151", "--k=151: the model ranks 150 items"),
    (f"--k={10**30}", f"--k={10**30}: the model ranks 150 items"),
    ("--chunk_size=0", "--chunk_size=0: must be >= 1"),
    ("--chunk_size=-8", "--chunk_size=-8: must be >= 1"),
    ("--seed_index=2", r"--seed_index=2: the run has 2 seeds \(0 \.\. 1\)"),
    ("--seed_index=-1", "--seed_index=-1: the run has 2 seeds"),
])
def test_bad_k_chunk_size_and_seed_index(run, flag, message):
  code = _cli(f"--workdir={run}", "--users=0", flag)
  assert code.startswith("error: ") and "\n" not in code
  assert re.search(message, code), code


def test_any_chunk_size_gives_the_exact_ranking(run):
  want_scores, want_ids = _expected_top(run, [0, 7, 199], 10, seed_index=1)
  for chunk_size in (7, 10**6):
    _, scores, ids = recommend.recommend_from_workdir(
        run, [0, 7, 199], 10, seed_index=1, chunk_size=chunk_size)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


def _failed(path):
  results.mark_failed(path, FloatingPointError("loss is NaN at epoch 3\n"
                                               "second line"))


def _truncate(path):
  path.write_bytes(path.read_bytes()[:100])


def _old_ease(path):
  """params.npz as an older version wrote EASE^R: B as "ease/weights"."""
  np.savez(path / results.PARAMS, **{"ease/weights": np.zeros((1, 4, 4))})


# (copy the run first?, how to spoil the path, expected message)
@pytest.mark.parametrize("copy, spoil, message", [
    (False, lambda p: None, "no such directory"),
    (False, lambda p: p.write_text("x"), "a file, not a run's workdir"),
    (False, lambda p: p.mkdir(), "holds no finished run: no run"),
    (True, lambda p: (p / results.RESULTS).unlink(),
     r"holds no finished run: an unfinished run \(no results.json yet\)"),
    (True, lambda p: results.mark_failed(p, FloatingPointError(
        "loss is NaN at epoch 3\nsecond line")),
     r"holds no finished run: the run failed \(loss is NaN at epoch 3; "
     r"failure.json\)"),
    (True, lambda p: (p / results.PARAMS).unlink(),
     "the run saved no params.npz"),
    (True, lambda p: _truncate(p / results.PARAMS), "cannot read params.npz"),
    (True, lambda p: (p / results.CONFIG).write_text("{"),
     r"config.json: unreadable \(JSONDecodeError: Expecting property name"),
    (True, _old_ease, r"holds EASE\^R's B as 'ease/weights', from an older "
     r"version .*; rerun the model"),
])
def test_bad_workdir(run, tmp_path, copy, spoil, message):
  path = tmp_path / "workdir"
  if copy:
    shutil.copytree(run, path)
  spoil(path)
  code = _cli(f"--workdir={path}", "--users=0")
  assert code.startswith(f"error: --workdir={path}") and "\n" not in code
  assert re.search(message, code), code


@pytest.mark.parametrize("config, message", [
    ([1, 2], "config.json: a JSON list, not an object"),
    ({"model": {"name": "mf"}}, "config.json lacks data, model.name or "
     "model.dim (an NCF run's config has them)"),
])
def test_a_config_without_the_fields_recommend_reads(run, tmp_path, config,
                                                      message):
  path = _copy(run, tmp_path / "workdir")
  (path / results.CONFIG).write_text(json.dumps(config))
  assert _cli(f"--workdir={path}", "--users=0") == (
      f"error: --workdir={path}: {message}")


@pytest.mark.parametrize("field, value, kind", [
    ("num_items", "1000", "int"), ("num_users", True, "int"),
    ("dir", 5, "str"), ("download", "yes", "bool")])
def test_a_data_field_of_another_kind_is_named(run, tmp_path, field, value,
                                               kind):
  # The dataset is loaded again from these: a TypeError traceback before.
  path = _copy(run, tmp_path / "workdir",
               lambda config: config["data"].update({field: value}))
  assert _cli(f"--workdir={path}", "--users=0") == (
      f"error: --workdir={path}: config.json: data.{field}={value!r} is not "
      f"a {kind}, as a run writes it")


@pytest.fixture
def file_run(run, tmp_path):
  """The run, trained (as it were) on NCF files of the same data, with the
  inputs.json a run records."""
  config = json.loads((run / results.CONFIG).read_text())
  data = datasets.load_dataset(config["data"])
  data_lib.write_ncf(data, tmp_path / "data", "tiny")
  config["data"].update(name="tiny", dir=str(tmp_path / "data"))
  path = _copy(run, tmp_path / "workdir")
  (path / results.CONFIG).write_text(json.dumps(config))
  (path / workdir.INPUTS).write_text(json.dumps(workdir.fingerprint(
      datasets.input_paths(config["data"]))))
  return path


def test_training_data_changed_at_the_same_sizes_is_refused(file_run,
                                                            tmp_path):
  want = _expected_top(file_run, [0], 3, seed_index=0)[1]
  _, _, ids = recommend.recommend_from_workdir(file_run, [0], 3)
  np.testing.assert_array_equal(ids, want)
  # The same bytes moved (data.dir edited) are the data trained on.
  shutil.copytree(tmp_path / "data", tmp_path / "moved")
  config = json.loads((file_run / results.CONFIG).read_text())
  config["data"]["dir"] = str(tmp_path / "moved")
  (file_run / results.CONFIG).write_text(json.dumps(config))
  _, _, ids = recommend.recommend_from_workdir(file_run, [0], 3)
  np.testing.assert_array_equal(ids, want)
  # User 0's training pairs removed: 200 users and 150 items still, but
  # items user 0 saw in training would come back as unseen.
  train = tmp_path / "moved" / "tiny.train.rating"
  train.write_text("".join(line for line in train.read_text().splitlines(
      keepends=True) if not line.startswith("0\t")))
  code = _cli(f"--workdir={file_run}", "--users=0", "--k=3")
  assert code == (f"error: --workdir={file_run}: {train} changed since "
                  "training (sha256 differs from inputs.json); recommend "
                  "from the data the run trained on, or retrain")


def test_a_run_without_its_inputs_record_is_refused(file_run):
  (file_run / workdir.INPUTS).unlink()
  with pytest.raises(recommend.RecommendError, match=(
      r"--workdir=.*: inputs.json: unreadable \(FileNotFoundError: \[Errno 2\]"
      r".*\), so the data cannot be checked$")):
    recommend.recommend_from_workdir(file_run, [0], 3)


def test_cli_exits_with_status_1_and_one_line(run):
  cli = [sys.executable, "-m", "dot_vs_learned.recommend", f"--workdir={run}"]
  bad = subprocess.run(cli + [f"--users=0,{10**30}", "--chunk_size=0"],
                       capture_output=True, text=True)
  assert bad.returncode == 1 and bad.stdout == ""
  assert bad.stderr.splitlines()[-1] == "error: --chunk_size=0: must be >= 1"
  assert "Traceback" not in bad.stderr
