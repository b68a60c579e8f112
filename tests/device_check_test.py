"""Tests of benchmarks/device_check.py and its device_*.py modules: the
quick mode end to end through launch/device_check.sh, the agreement
criterion (device_report.py) and the section runner (device_runner.py)."""

import json
import math
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
# pylint: disable=g-import-not-at-top,wrong-import-position
import device_report
import device_runner
import device_runs

SECTIONS = ("environment", "mf", "learned", "retrieval", "e2e", "drift",
            "synthetic", "drift_deterministic")


def _positive(x):
  return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  out = tmp_path_factory.mktemp("device_check")
  env = dict(os.environ, PYTHON=sys.executable)
  done = subprocess.run([str(REPO / "launch/device_check.sh"), str(out),
                         "--quick"], env=env, capture_output=True, text=True,
                        timeout=600, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return out, json.loads((out / "device_check.json").read_text())


@pytest.mark.slow
def test_quick_mode_runs_every_section(quick):
  out, record = quick
  assert record["mode"] == "quick"
  assert list(record["sections"]) == list(SECTIONS)
  for name, section in record["sections"].items():
    assert section["status"] == "ok", (name, section.get("error"))
  text = (out / "device_check.md").read_text()
  assert "## Goals" in text
  for name in SECTIONS:
    assert f"## {name}: ok" in text
  assert (out / "work" / "e2e" / "results.json").exists()


@pytest.mark.slow
def test_quick_mode_numbers(quick):
  sections = quick[1]["sections"]
  env = sections["environment"]["result"]
  assert env["backend"] == "cpu" and "jax" in env["versions"]
  assert env["device_count"] >= 1 and env["code_version"]
  assert len(env["source_sha256"]) == 16
  mf = sections["mf"]["result"]["rows"]
  assert {r["method"] for r in mf} == {"batched", "floor"}
  learned = sections["learned"]["result"]["rows"]
  assert [r["model"] for r in learned] == ["neumf"] and learned[0]["d"] == 15
  for row in mf + learned:
    assert _positive(row["examples_per_s"]), row
  retrieval = sections["retrieval"]["result"]["rows"]
  assert {r["method"] for r in retrieval} == {"dot", "mlp"}
  for row in retrieval:
    assert row["n"] == 5000 and row["d"] == 16 and row["chunk_size"] == 1000
    assert _positive(row["queries_per_s"])
    assert 0 < row["p50_ms"] <= row["p99_ms"]
  e2e = sections["e2e"]["result"]
  hr, ndcg = e2e["final"]["hr@10"], e2e["final"]["ndcg@10"]
  assert len(hr["per_seed"]) == 2 and e2e["progress"]["epochs_done"] == 2
  for h, n in zip(hr["per_seed"], ndcg["per_seed"]):
    assert 0 < n <= h <= 1  # a hit at rank r scores 1 / log2(r + 2) <= 1
  assert 0 < e2e["run_s"] <= e2e["wall_s"]
  for name in ("drift", "drift_deterministic"):
    drift = sections[name]["result"]
    assert len(drift["seconds"]) == 2 and 0 <= drift["hr@10"] <= 1
    # On a CPU, reruns are bit-identical, with or without the GPU flag.
    assert drift["max_abs_diff"] == {"hr": 0.0, "ndcg": 0.0, "loss": 0.0,
                                     "params": 0.0}
  assert device_runs.DETERMINISTIC in sections["drift_deterministic"][
      "result"]["xla_flags"]
  cell = sections["synthetic"]["result"]
  # The dot product is the truth: its RMSE is the label noise, 0.85, and
  # zero's is sqrt(Var y) = 1.13 (400 test pairs per seed, 2 seeds).
  assert abs(cell["rmse"]["dot_test"] - 0.85) < 0.08
  assert abs(cell["rmse"]["zero_test"] - 1.13) < 0.1
  assert cell["num_train"] == 3600 and cell["grid_shapes_measured"] == "2 of 2"
  assert _positive(cell["samples_per_s"]) and _positive(cell["grid_s"])
  goals = quick[1]["goals"]
  assert len(goals) == 4
  for goal in goals:
    assert _positive(goal["value"]) and goal["met"] in (True, False), goal


def test_agreement_is_two_standard_errors_of_the_difference():
  final = {"hr@10": {"mean": 0.7300, "std": 0.0014, "per_seed": [0.73] * 8},
           "ndcg@10": {"mean": 0.4510, "std": 0.0007,
                       "per_seed": [0.451] * 8}}
  got = device_report.agreement(final)
  # 2 sqrt(0.0014^2 / 8 + 0.0014^2 / 8) = 0.0014; 0.0010 is within it.
  assert got["hr@10"]["bound"] == pytest.approx(0.0014)
  assert got["hr@10"]["agrees"]
  # 2 sqrt(2 * 0.0007^2 / 8) = 0.0007 < |0.4510 - 0.4524| = 0.0014.
  assert got["ndcg@10"]["bound"] == pytest.approx(0.0007)
  assert not got["ndcg@10"]["agrees"]


def _returns(spec, report):
  del report
  return {"value": spec["value"], "xla_flags": os.environ.get("XLA_FLAGS")}


def _raises(spec, report):
  del spec, report
  raise ValueError("bad input")


def _hangs(spec, report):
  del spec
  report({"rows": [1]})
  time.sleep(60)


def _dies(spec, report):
  del spec, report
  os._exit(3)  # pylint: disable=protected-access


def test_runner_records_failures_and_goes_on(tmp_path):
  records = {}
  tasks = [("a", _returns, 30, "", {"value": 1}),
           ("b", _raises, 30, "", {}),
           ("c", _hangs, 2, "", {}),
           ("d", _dies, 30, "", {}),
           ("e", _returns, 30, device_runs.DETERMINISTIC, {"value": 2}),
           ("f", _returns, 30, "", {"value": 3})]
  device_runner.run_sections(tasks, time.time() + 120, tmp_path / "log",
                            records.__setitem__, min_seconds=1)
  assert {k: r["status"] for k, r in records.items()} == {
      "a": "ok", "b": "error", "c": "timeout", "d": "crashed", "e": "ok",
      "f": "ok"}
  assert records["a"]["result"]["value"] == 1
  assert records["b"]["error"].startswith("ValueError: bad input")
  assert records["c"]["result"] == {"rows": [1]}  # its last partial report
  assert "exit code 3" in records["d"]["error"]
  assert device_runs.DETERMINISTIC in records["e"]["result"]["xla_flags"]
  assert "deterministic" not in (records["f"]["result"]["xla_flags"] or "")
  # Past the global deadline, sections are skipped, not started.
  late = {}
  device_runner.run_sections(tasks[:1], time.time() + 0.5,
                            tmp_path / "log", late.__setitem__, min_seconds=1)
  assert late["a"]["status"] == "skipped"


def test_measure_until_skips_what_no_longer_fits():
  reports = []
  rows = device_runner.measure_until(
      time.time() + 3600, [dict(x=1), dict(x=2)], lambda x: {"y": 10 * x},
      lambda r: reports.append(len(r)))
  assert rows == [{"x": 1, "y": 10}, {"x": 2, "y": 20}] and reports == [1, 2]
  # Past its deadline a section measures nothing more: rows say why.
  rows = device_runner.measure_until(time.time() - 1, [dict(x=1)],
                                     lambda x: {"y": x})
  assert rows == [{"x": 1, "skipped": "no time left in the section's budget"}]
