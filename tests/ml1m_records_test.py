"""launch/ml1m_records.sh: the runs of runs/README.md, each made once."""

import json
import os
import pathlib
import shlex
import shutil
import subprocess

from dot_vs_learned import data as data_lib
import readme_test  # pylint: disable=g-bad-import-order

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "launch" / "ml1m_records.sh"
ML1M = tuple(f"ml-1m.{suffix}" for suffix in data_lib.SUFFIXES)


def _script(tmp_path, *args, dry=True):
  """Runs the script on a folder holding the three file names (it only
  checks that they are there) with runs and workdirs under tmp_path."""
  data = tmp_path / "ml1m"
  data.mkdir(exist_ok=True)
  for name in ML1M:
    (data / name).touch()
  env = dict(os.environ, RUNS=str(tmp_path / "runs"),
             WORKDIRS=str(tmp_path / "work"))
  env.pop("DRY_RUN", None)
  if dry:
    env["DRY_RUN"] = "1"
  return subprocess.run(["bash", str(SCRIPT), str(data), *args], env=env,
                        capture_output=True, text=True, check=False)


def _commands(stdout) -> list[list[str]]:
  """The printed commands' words from the python on, without the log."""
  found = []
  for line in stdout.splitlines():
    if line.startswith("+ "):
      words = shlex.split(line[2:].split(" >> ")[0])
      start = next(i for i, w in enumerate(words) if w.endswith("python"))
      found.append(words[start:])
  return found


def test_each_record_not_in_runs_yet_is_one_valid_command(tmp_path):
  done = tmp_path / "runs" / "table1" / "popularity"
  done.mkdir(parents=True)
  (done / "results.json").write_text("{}")
  out = _script(tmp_path)
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines()[0] == (
      f"table1/popularity: in {tmp_path / 'runs'} already")
  commands = _commands(out.stdout)
  for words in commands:
    assert readme_test.problems(shlex.join(words)) == [], words
  assert commands[0][2] == "dot_vs_learned.splits"  # EASE^R's tuning split
  workdirs = [w.split("/work/")[1] for words in commands[1:]
              for w in words if w.startswith("--workdir=")]
  assert workdirs == [
      "table1/ease_tuned", "table1/ials_d192", "table1/ials_d64",
      "fig2_d16", "fig2_d32", "fig2_d64", "fig2_d96", "fig2_d128",
      "fig2_d192", "table1/neumf_seed0", "table1/neumf_seed1",
      "table1/neumf_seed2", "table1/neumf_seed3"]
  fig2 = commands[9]  # d = 192 at the paper's protocol, 8 seeds
  assert fig2[3:] == ["--config=configs/movielens.py",
                      f"--config.data.dir={tmp_path / 'ml1m'}",
                      "--config.model.dim=192", "--config.train.num_seeds=8",
                      f"--workdir={tmp_path / 'work' / 'fig2_d192'}"]
  seeds = [w for words in commands[-4:] for w in words if "train.seed=" in w]
  assert seeds == [f"--config.train.seed={s}" for s in range(4)]


def test_named_records_run_in_the_order_given(tmp_path):
  out = _script(tmp_path, "fig2_d32", "table1/ials_d64")
  assert out.returncode == 0, out.stderr
  assert [w for words in _commands(out.stdout) for w in words
          if w.startswith("--config.model.dim=")] == [
              "--config.model.dim=32", "--config.model.dim=64"]


def test_a_finished_workdir_becomes_a_record_without_training(tmp_path):
  work = tmp_path / "work" / "table1" / "popularity"
  (work / "checkpoints" / "16").mkdir(parents=True)
  for name, text in (("results.json", json.dumps({"final": {}})),
                     ("summary.md", "# popularity\n"), ("params.npz", "x"),
                     ("curves.png", "x"), (".lock", "1")):
    (work / name).write_text(text)
  (work.parent / "popularity.log").write_text("a log\n")
  dry = _script(tmp_path, "table1/popularity")
  assert dry.stdout == (f"table1/popularity: finished in {tmp_path / 'work'}"
                        f", to be recorded in {tmp_path / 'runs'}\n")
  assert not (tmp_path / "runs").exists()  # DRY_RUN writes nothing
  out = _script(tmp_path, "table1/popularity", dry=False)
  assert out.returncode == 0, out.stderr
  record = tmp_path / "runs" / "table1" / "popularity"
  assert sorted(p.name for p in record.iterdir()) == ["results.json",
                                                      "summary.md"]
  assert (record.parent / "popularity.log").read_text() == "a log\n"
  assert _commands(out.stdout) == []  # nothing trained
  again = _script(tmp_path, "table1/popularity", dry=False)
  assert again.stdout == f"table1/popularity: in {tmp_path / 'runs'} already\n"
  # A finished workdir run by hand, without the script's log.
  shutil.copytree(work, tmp_path / "work" / "table1" / "ials_d64")
  out = _script(tmp_path, "table1/ials_d64", dry=False)
  assert out.returncode == 0, out.stderr
  assert (record.parent / "ials_d64" / "summary.md").exists()
  assert not (record.parent / "ials_d64.log").exists()


def test_bad_input_is_one_line_before_anything_runs(tmp_path):
  out = _script(tmp_path, "fig2_d48")
  assert (out.returncode, out.stdout) == (1, "")
  assert out.stderr.startswith("error: NAME=fig2_d48: not a record of "
                               "runs/README.md; one of table1/popularity ")
  assert len(out.stderr.splitlines()) == 1
  missing = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "none")],
                           capture_output=True, text=True, check=False)
  assert (missing.returncode, missing.stderr) == (
      1, f"error: DIR_WITH_ML-1M={tmp_path / 'none'}: no such folder\n")
  (tmp_path / "ml1m" / "ml-1m.test.negative").unlink()
  partial = subprocess.run(["bash", str(SCRIPT), "ml1m"], cwd=tmp_path,
                           capture_output=True, text=True, check=False)
  assert (partial.returncode, partial.stderr) == (
      1, f"error: DIR_WITH_ML-1M={tmp_path / 'ml1m'}: no ml-1m.test.negative "
      "there\n")
  usage = subprocess.run(["bash", str(SCRIPT)], capture_output=True,
                         text=True, check=False)
  assert usage.returncode == 2 and "DIR_WITH_ML-1M [NAME ...]" in usage.stderr
  assert not (tmp_path / "runs").exists() and not (tmp_path / "work").exists()
