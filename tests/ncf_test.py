"""End-to-end tests of the NCF experiment, the entry point and the workdir."""

import importlib.util
import json
import re
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from dot_vs_learned import data
from dot_vs_learned import datasets
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import results
from dot_vs_learned import summary

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_config():
  config = ncf_config.default_config()
  config.data.update(num_users=120, num_items=200)
  config.model.dim = 4
  config.train.update(epochs=3, batch_size=256, num_seeds=2, learning_rate=0.05)
  config.eval.every = 2
  config.eval.full_ranking = False  # its own tests: ncf_eval_test.py
  return config


@pytest.mark.parametrize("field, value, message", [
    ("model.dim", 1, "model.dim=1"),
    ("model.dim", 0, "model.dim=0"),
    ("model.name", "ncf", "model.name='ncf'"),
    ("train.optimizer", "rmsprop", "train.optimizer='rmsprop'"),
    ("model.hidden", (4, 0), "model.hidden=(4, 0)"),
    ("train.l2_weights", -1.0, "train.l2_weights=-1.0"),
    ("train.learning_rate", -0.1, "train.learning_rate=-0.1"),
    ("train.reg", -1.0, "train.reg=-1.0"),
    ("train.num_negatives", 0, "train.num_negatives=0"),
    ("train.num_seeds", 0, "train.num_seeds=0"),
    ("eval.k", 0, "eval.k=0"),
    ("model.hidden", ("a",), "model.hidden=('a',): layer sizes must be whole"),
    ("eval.full_ranking_ks", (10.5,),
     "eval.full_ranking_ks=(10.5,): needs whole numbers >= 1"),
    ("data.num_users", 0, "data.num_users=0: must be a whole number >= 1"),
    ("data.num_items", -5, "data.num_items=-5: must be a whole number >= 1"),
    # The generated data's dense draws: 40 bytes x 10^8 x 200 = 745 GiB.
    ("data.num_users", 10**8, "data.num_users=100000000: x data.num_items="
     "200: generating them needs about 745.1 GiB"),
])
def test_validate_names_the_field(field, value, message):
  config = tiny_config()
  group, name = field.split(".")
  config[group][name] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    ncf_config.validate(config)


@pytest.mark.parametrize("name, dim, optimizer, message", [
    ("gmf", 8, "batched", "gmf trains with ('adam', 'lazy_adam', 'sgd') only"),
    ("mlp", 7, "adam", "mlp: must be even"),
    ("neumf", 8, "adam", "neumf: must be a multiple of 3"),
])
def test_validate_learned_models(name, dim, optimizer, message):
  config = tiny_config()
  config.model.update(name=name, dim=dim)
  config.train.optimizer = optimizer
  with pytest.raises(ValueError, match=re.escape(message)):
    ncf_config.validate(config)


def test_full_ranking_cut_offs_beyond_the_items_are_refused(tmp_path):
  config = tiny_config()
  config.eval.update(full_ranking=True, full_ranking_ks=(10, 500))
  with pytest.raises(ValueError, match=re.escape(
      "eval.full_ranking_ks=(10, 500): must be <= the dataset's 200 items")):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_k_beyond_candidates_is_refused_before_training(tmp_path):
  config = tiny_config()
  config.eval.k = 101
  with pytest.raises(ValueError, match="eval.k=101.*100 ranked candidates"):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_missing_data_fails_before_the_workdir_is_made(tmp_path):
  config = tiny_config()
  config.data.update(name="ml-1m", dir=str(tmp_path / "nowhere"))
  with pytest.raises(data.DataError, match="missing ml-1m.train.rating"):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_run_writes_metrics_and_final_results(tmp_path):
  final = ncf.run(tiny_config(), tmp_path)
  records = results.read_metrics(tmp_path)
  assert [r["epoch"] for r in records] == [2, 3]
  assert final["final"]["epoch"] == 3
  assert final["final"] == records[-1]
  assert len(final["final"]["hr@10"]["per_seed"]) == 2
  assert final["ncf_predictive_factor"] is None  # MF has none
  assert final["final"]["user_norm"]["mean"] > 0
  saved = json.loads((tmp_path / results.RESULTS).read_text())
  assert saved["final"]["hr@10"] == final["final"]["hr@10"]
  assert json.loads((tmp_path / results.CONFIG).read_text())["model"]["dim"] == 4
  env = saved["environment"]
  assert env["backend"] == "cpu" and env["jax"] == jax.__version__
  assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|\d+\.\d+\.\d+",
                      env["code_version"])
  summary = (tmp_path / "summary.md").read_text()
  hr = final["final"]["hr@10"]
  assert (f"| hr@10 | {hr['mean']:.4f} ± {hr['std']:.4f} | "
          f"{hr['per_seed'][0]:.4f} / {hr['per_seed'][1]:.4f} |") in summary
  assert "| train.learning_rate | 0.05 |" in summary
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # Checkpointed at each evaluation, then deleted with the run finished.
  assert not (tmp_path / results.CHECKPOINTS).exists()
  with pytest.raises(results.WorkdirError, match="finished run"):
    ncf.run(tiny_config(), tmp_path)
  assert json.loads((tmp_path / results.RESULTS).read_text()) == saved


def test_popularity_run(tmp_path):
  config = tiny_config()
  config.model.name = "popularity"
  final = ncf.run(config, tmp_path)
  assert 0.0 < final["final"]["hr@10"]["mean"] < 1.0


def test_divergence_stops_with_a_clear_error(tmp_path):
  config = tiny_config()
  config.train.learning_rate = 1e30
  with pytest.raises(FloatingPointError, match="diverged by epoch 2.*"
                     r"train\.learning_rate=1e\+30"):
    ncf.run(config, tmp_path)
  assert not (tmp_path / results.RESULTS).exists()
  assert not (tmp_path / results.METRICS).exists()
  failure = json.loads((tmp_path / results.FAILURE).read_text())
  assert failure["error"] == "FloatingPointError"
  assert "diverged by epoch 2" in failure["message"]
  config.train.learning_rate = 0.05  # another config: refused, says what
  with pytest.raises(results.WorkdirError,
                     match=r"train\.learning_rate: 1e\+30 -> 0\.05"):
    ncf.run(config, tmp_path)
  ncf.run(config, tmp_path, overwrite=True)  # starts afresh
  assert not (tmp_path / results.FAILURE).exists()
  assert (tmp_path / results.RESULTS).exists()


@pytest.mark.slow  # a subprocess run
def test_entry_point_end_to_end(tmp_path):
  command = [sys.executable, "-m", "dot_vs_learned.main",
             f"--config={REPO / 'configs' / 'test.py'}",
             f"--workdir={tmp_path}", "--config.train.epochs=2"]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  final = json.loads((tmp_path / results.RESULTS).read_text())
  assert final["final"]["epoch"] == 2 and final["dataset"] == "default"
  again = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)
  assert again.returncode != 0 and "--overwrite" in again.stderr


def test_pinterest_config_runs_on_generated_files_of_that_name(tmp_path):
  # The real pinterest-20 files are not available here; the same code path
  # runs on generated data written in the NCF format under that name.
  generated = datasets.generate_default(num_users=150, num_items=300, seed=5)
  data.write_ncf(generated, tmp_path / "data", "pinterest-20")
  spec = importlib.util.spec_from_file_location(
      "pinterest_config", REPO / "configs" / "pinterest.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.dir = str(tmp_path / "data")
  config.train.update(epochs=2, batch_size=512)
  config.eval.every = 2
  final = ncf.run(config, tmp_path / "run")
  assert final["dataset"] == "pinterest-20"
  assert final["final"]["epoch"] == 2
  assert config.train.num_negatives == 10 and config.train.reg == 0.01


def test_entry_point_reports_bad_input_without_traceback(tmp_path):
  command = [sys.executable, "-m", "dot_vs_learned.main",
             f"--config={REPO / 'configs' / 'test.py'}",
             f"--workdir={tmp_path / 'run'}", "--config.model.dim=0"]
  done = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 1
  assert "error: config field model.dim=0: must be >= 2" in done.stderr
  assert "Traceback" not in done.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pretrained_neumf_trains_gmf_and_mlp_then_fine_tunes(tmp_path):
  config = tiny_config()
  ncf_config.use_ncf_recipe(config, "neumf_pretrained")
  config.data.update(num_users=150, num_items=300)
  config.model.dim = 12  # GMF k = 4, MLP 2k = 8
  config.train.update(epochs=2, num_seeds=2, learning_rate=0.01)
  config.pretrain.update(epochs=2, finetune_learning_rate=0.01)
  config.eval.every = 2
  final = ncf.run(config, tmp_path)
  records = results.read_metrics(tmp_path)
  assert [r["stage"] for r in records] == ["gmf", "mlp", "neumf"]
  assert final["final"]["stage"] == "neumf" and final["dim"] == 12
  assert final["ncf_predictive_factor"] == 4
  gmf, mlp, neumf = ncf._stage_configs(config)  # pylint: disable=protected-access
  assert (gmf.model.dim, mlp.model.dim, tuple(mlp.model.hidden)) == (
      4, 8, (16, 8, 4))
  assert neumf.train.optimizer == "sgd" and neumf.model.name == "neumf"


def _cli(workdir, *flags):
  return [sys.executable, "-m", "dot_vs_learned.main",
          "--config=configs/default.py", f"--workdir={workdir}",
          "--config.data.num_users=600", "--config.data.num_items=400",
          "--config.model.dim=8", "--config.train.epochs=30",
          "--config.eval.every=1", "--config.train.num_seeds=2", *flags]


def _kill_after(cmd, workdir, evaluations):
  """Starts cmd, SIGKILLs it once metrics.jsonl has `evaluations` lines."""
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics = pathlib.Path(workdir) / results.METRICS
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if metrics.exists() and metrics.read_text().count("\n") >= evaluations:
      proc.send_signal(signal.SIGKILL)
      break
    time.sleep(0.02)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  subprocess.run(_cli(whole), cwd=REPO, check=True, capture_output=True)
  _kill_after(_cli(killed), killed, 7)
  assert not (killed / results.RESULTS).exists()
  again = subprocess.run(_cli(killed), cwd=REPO, check=True,
                         capture_output=True, text=True)
  assert "resuming from the checkpoint at epoch" in again.stderr
  assert f"code {summary.code_version()}, JAX" in again.stderr
  want = json.loads((whole / results.RESULTS).read_text())["final"]
  got = json.loads((killed / results.RESULTS).read_text())["final"]
  for name in ("hr@10", "ndcg@10", "loss", "user_norm"):
    assert got[name]["per_seed"] == want[name]["per_seed"], name
  for name, value in results.load_params(whole).items():
    np.testing.assert_array_equal(results.load_params(killed)[name], value)
  # One evaluation per epoch, none twice, after the resume.
  epochs = [r["epoch"] for r in results.read_metrics(killed)]
  assert epochs == list(range(1, 31))


@pytest.mark.slow
def test_changed_config_is_refused_and_overwrite_starts_afresh(tmp_path):
  _kill_after(_cli(tmp_path), tmp_path, 3)
  changed = _cli(tmp_path, "--config.train.learning_rate=0.02")
  out = subprocess.run(changed, cwd=REPO, capture_output=True, text=True)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "train.learning_rate: 0.01 -> 0.02" in out.stderr
  assert "Traceback" not in out.stderr
  out = subprocess.run(changed + ["--overwrite"], cwd=REPO, check=True,
                       capture_output=True, text=True)
  assert "resuming" not in out.stderr
  assert [r["epoch"] for r in results.read_metrics(tmp_path)] == list(
      range(1, 31))


@pytest.mark.slow
def test_pretrained_neumf_killed_in_its_second_stage_resumes(tmp_path):
  flags = ("--config.model.name=neumf_pretrained", "--config.model.dim=6",
           "--config.train.optimizer=adam", "--config.train.epochs=6",
           "--config.pretrain.epochs=6", "--config.train.batch_size=256")
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  subprocess.run(_cli(whole, *flags), cwd=REPO, check=True,
                 capture_output=True)
  _kill_after(_cli(killed, *flags), killed, 6 + 3)  # gmf done, mlp at 3
  again = subprocess.run(_cli(killed, *flags), cwd=REPO, check=True,
                         capture_output=True, text=True)
  assert "[gmf] resuming from the checkpoint at epoch 6" in again.stderr
  want = json.loads((whole / results.RESULTS).read_text())["final"]
  got = json.loads((killed / results.RESULTS).read_text())["final"]
  assert got["hr@10"]["per_seed"] == want["hr@10"]["per_seed"]
  assert got["loss"]["per_seed"] == want["loss"]["per_seed"]
  stages = [(r["stage"], r["epoch"]) for r in results.read_metrics(killed)]
  assert stages == [(s, e) for s in ("gmf", "mlp", "neumf")
                    for e in range(1, 7)]


def test_replacing_metrics_keeps_other_stages_and_skips_a_cut_line(
    tmp_path):
  for stage, epoch in (("gmf", 1), ("gmf", 2), ("mlp", 1), ("mlp", 2)):
    results.append_metrics(tmp_path, {"stage": stage, "epoch": epoch})
  with open(tmp_path / results.METRICS, "a") as f:
    f.write('{"epoch": 3, "stage": "ml')  # the kill came mid-line
  results.replace_metrics(tmp_path, "mlp", [{"stage": "mlp", "epoch": 1}])
  assert [(r["stage"], r["epoch"]) for r in results.read_metrics(tmp_path)] == [
      ("gmf", 1), ("gmf", 2), ("mlp", 1)]


@pytest.mark.slow
def test_a_second_process_on_the_workdir_fails_at_once(tmp_path):
  first = subprocess.Popen(_cli(tmp_path), cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not (tmp_path / results.METRICS).exists() and time.time() < deadline:
    time.sleep(0.05)
  second = subprocess.run(_cli(tmp_path), cwd=REPO, capture_output=True,
                          text=True, timeout=120)
  assert first.wait(timeout=300) == 0
  assert second.returncode == 1
  assert second.stderr.strip().splitlines()[-1] == (
      f"error: {tmp_path} is in use by process {first.pid} (it holds "
      f"{tmp_path}/.lock); wait for it to end or choose another --workdir")
  epochs = [r["epoch"] for r in results.read_metrics(tmp_path)]
  assert epochs == list(range(1, 31))
  assert json.loads((tmp_path / results.RESULTS).read_text())[
      "final"]["epoch"] == 30


def _unfinish(workdir):
  """Leaves a finished run (of checkpoint.keep_finished) as a run killed
  after its last checkpoint."""
  for name in (results.RESULTS, results.PARAMS):
    (workdir / name).unlink()


def _four_epochs():
  config = tiny_config()
  config.train.epochs, config.eval.every = 4, 1
  config.checkpoint.keep_finished = True  # to resume after _unfinish
  return config


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory):
  """An uninterrupted 4-epoch run: (results.json's final, metrics lines)."""
  workdir = tmp_path_factory.mktemp("whole")
  final = ncf.run(_four_epochs(), workdir)["final"]
  return final, _untimed(results.read_metrics(workdir))


def _untimed(records):
  return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


@pytest.mark.parametrize("damage", ["newest_checkpoint", "metrics_file"])
def test_resume_survives_a_damaged_checkpoint_or_a_deleted_metrics_file(
    tmp_path, whole_run, damage):
  want, want_lines = whole_run
  ncf.run(_four_epochs(), tmp_path)
  _unfinish(tmp_path)
  if damage == "newest_checkpoint":
    (tmp_path / "checkpoints" / "train" / "4" / "meta" / "metadata"
     ).write_text("{")
  else:
    (tmp_path / results.METRICS).unlink()
  got = ncf.run(_four_epochs(), tmp_path)["final"]
  for name in ("hr@10", "ndcg@10", "loss", "user_norm"):
    assert got[name]["per_seed"] == want[name]["per_seed"]
  assert _untimed(results.read_metrics(tmp_path)) == want_lines


def test_resume_after_the_data_files_changed_is_refused(tmp_path):
  generated = datasets.generate_default(num_users=120, num_items=200, seed=3)
  data.write_ncf(generated, tmp_path / "data", "mine")
  config = tiny_config()
  config.data.update(name="mine", dir=str(tmp_path / "data"))
  config.checkpoint.keep_finished = True
  ncf.run(config, tmp_path / "run")
  assert list((tmp_path / "run" / results.CHECKPOINTS).iterdir())
  _unfinish(tmp_path / "run")
  train_file = tmp_path / "data" / "mine.train.rating"
  train_file.write_text(train_file.read_text().replace("\t1\t0\n", "\t1\t7\n"))
  with pytest.raises(results.WorkdirError,
                     match="input files changed.*mine.train.rating"):
    ncf.run(config, tmp_path / "run")


@pytest.mark.parametrize("field, value, message", [
    ("train.learning_rate", float("inf"), "must be finite"),
    ("train.reg", float("nan"), "must be finite"),
    ("train.init_stddev", float("inf"), "must be finite"),
    ("train.seed", 2**40, r"must be in \[0, 2147483647\]"),
    ("train.epochs", 10**9, "must be <= 100000"),
    # The generator's own message named no field.
    ("data.num_items", 50, "must be >= 101: each user of the generated data"),
])
def test_values_out_of_range_name_their_field(tmp_path, field, value, message):
  config = tiny_config()
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ncf_config.ConfigError, match=f"{field}=.*{message}"):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_the_generated_data_check_is_the_generators_own_bound():
  least = ncf_config.GENERATED_NEGATIVES + 2
  assert datasets.generate_default(num_users=5, num_items=least,
                                   seed=0).test_negatives.shape == (
                                       5, ncf_config.GENERATED_NEGATIVES)
  with pytest.raises(data.DataError, match="leaves no room"):
    datasets.generate_default(num_users=5, num_items=least - 1, seed=0)


@pytest.mark.parametrize("field, value, message", [
    ("model.dim", 10**8, "GiB"),
    ("train.batch_size", 10**9, "GiB"),
    ("train.window", 10**9, "GiB"),
    ("train.num_negatives", 10**8, "int32 stream positions"),
    # The tower's weights: 10^10 of them (a traceback from XLA before).
    ("model.hidden", (10**5, 10**5), "GiB"),
])
def test_sizes_beyond_the_machine_are_refused(tmp_path, field, value, message):
  config = tiny_config()
  section, name = field.split(".")
  config[section][name] = value
  if name == "window":  # the window is exact's batch
    config.train.optimizer = "exact"
  if name == "hidden":
    config.model.name, config.train.optimizer = "mlp", "adam"
    field = "config fields"  # the message names the sizes it counts
  with pytest.raises(ncf_config.ConfigError, match=f"{field}.*{message}"):
    ncf.run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_config_typos_and_bad_config_files_are_one_line_errors(tmp_path):
  bad_file = tmp_path / "bad.py"
  bad_file.write_text("def get_config(:\n")
  raising = tmp_path / "raising.py"
  raising.write_text("def get_config():\n  return 1 / 0\n")
  for flags, message in (
      # Loaded while parsing an override: absl passes its error through.
      ([f"--config={raising}", "--config.train.epochs=1"],
       f"error: --config={raising}: cannot load it (ZeroDivisionError: "
       "division by zero)"),
      (["--config=configs/missing.py", "--config.train.epochs=1"],
       "error: --config=configs/missing.py: cannot load it (OSError: "
       "[Errno 2] No such file or directory: 'configs/missing.py')"),
      (["--config=configs/test.py", "--config.train.epoch=3"],
       'error: --config.train.epoch: no such config field; Did you mean '
       '"epochs" instead of "epoch"?'),
      (["--config=configs/missing.py"], "error: --config=configs/missing.py: "
       "cannot load it ([Errno 2] No such file or directory: "
       "'configs/missing.py')"),
      ([f"--config={bad_file}"], f"error: --config: {bad_file}:1: "
       "invalid syntax"),
      # config_flags would join the tuples: full_ranking_ks (5, 20). (A
      # scalar given twice takes its last value, as absl's flags do.)
      (["--config=configs/test.py", "--config.eval.full_ranking_ks=(5,)",
        "--config.eval.k=5", "--config.eval.k=20",
        "--config.eval.full_ranking_ks=(20,)"],
       "error: --config.eval.full_ranking_ks: a tuple given more than once, "
       "which config_flags would join; give it once"),
      (["--config=configs/test.py", "--config.experiment=bogus"],
       "error: config field experiment='bogus': must be one of ('ncf', "
       "'compare', 'retrieval', 'synthetic', 'tuning')"),
      (["--config=configs/compare.py:x"], "error: flag "
       "--config=configs/compare.py:x: Error whilst parsing config file: "
       "ValueError: configs/compare.py takes no ':' argument (got 'x')")):
    out = subprocess.run([sys.executable, "-m", "dot_vs_learned.main",
                          f"--workdir={tmp_path / 'run'}", *flags], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip().splitlines() == [message]
  assert not (tmp_path / "run").exists()
  help_out = subprocess.run([sys.executable, "-m", "dot_vs_learned.main",
                             "--help", "--config=configs/movielens.py:gmf"],
                            cwd=REPO, capture_output=True, text=True,
                            timeout=120)
  assert help_out.returncode == 0
  # absl's flags, then the config's fields with their values and meanings.
  assert "--workdir: Where results are written." in help_out.stdout
  assert ("  --config.train.optimizer='adam'\n      MF SGD: \"exact\" or "
          "\"batched\" (sum); or \"adam\", \"lazy_adam\" (only the embedding "
          "rows a batch uses move), \"sgd\".") in help_out.stdout
