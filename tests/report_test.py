"""Tests of report.py: Figure 2 and Table 1 from saved runs."""

import csv
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from dot_vs_learned import datasets
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import report
from dot_vs_learned import report_runs


def _fake_run(path, model, dim, hr, ndcg, dataset="ml-1m", epoch=20):
  """A results.json as ncf.run writes it (what report.py reads)."""
  path.mkdir(parents=True)
  final = {"epoch": epoch,
           "hr@10": {"mean": sum(hr) / len(hr), "per_seed": hr},
           "ndcg@10": {"mean": sum(ndcg) / len(ndcg), "per_seed": ndcg}}
  (path / "results.json").write_text(json.dumps(
      {"model": model, "dataset": dataset, "dim": dim, "final": final}))


@pytest.fixture
def runs(tmp_path):
  root = tmp_path / "runs"
  _fake_run(root / "pop", "popularity", 64, [0.45], [0.25], epoch=0)
  _fake_run(root / "mf64", "mf", 64, [0.70, 0.72], [0.43, 0.45])
  _fake_run(root / "tune" / "final_d192", "mf", 192, [0.73, 0.73, 0.74],
            [0.45, 0.45, 0.46], epoch=256)
  _fake_run(root / "neumf", "neumf_pretrained", 63, [0.69, 0.71],
            [0.41, 0.42])
  _fake_run(root / "pin", "mf", 64, [0.88], [0.57], dataset="pinterest-20")
  _fake_run(root / "mine", "mf", 32, [0.5], [0.3], dataset="ml-100k")
  _fake_run(root / "ials", "ials", 192, [0.72, 0.74], [0.44, 0.46], epoch=12)
  _fake_run(root / "ease", "ease", 64, [0.7182], [0.4511], epoch=0)
  (root / "synthetic").mkdir()
  (root / "synthetic" / "results.json").write_text('{"experiment": "x"}')
  return root


def test_table1_puts_our_runs_beside_the_quoted_rows(runs, tmp_path):
  rows, written = report.write_report([runs], tmp_path / "out")
  assert len(rows) == 8  # the synthetic results are not NCF runs
  assert sorted(written) == ["figure2.csv", "figure2.png", "rankings.md",
                             "table1.csv", "table1.md"]
  table = report.table1(rows)
  by_name = {row[0]: row for row in table}
  pop = by_name["Popularity"]
  assert pop[2:4] == ["0.4500", "0.2500"] and pop[4:] == ["-"] * 4
  # The largest d per dataset; any dataset gets its columns, after the
  # paper's two.
  mf = by_name["Matrix factorization, d = 32/64/192"]
  assert mf[2] == "0.7333 ± 0.0047" and mf[4] == "0.8800"
  assert mf[6:] == ["0.5000", "0.3000"] and "ml-100k 1 seed" in mf[1]
  assert "MovieLens-1M 3 seeds, epoch 256" in mf[1]
  assert by_name["NeuMF pretrained, d = 63"][2] == "0.7000 ± 0.0100"
  assert "NeuMF, d = 63" not in by_name  # no run without pretraining
  quoted_rows = [row for row in table if row[1] == "quoted"]
  assert len(quoted_rows) == 7
  # The baselines: iALS with its d and epochs, EASE^R closed form, each
  # beside its quoted row; SLIM quoted only.
  ials = by_name["iALS, d = 192"]
  assert ials[1] == "this suite: MovieLens-1M 2 seeds, epoch 12"
  assert ials[2:4] == ["0.7300 ± 0.0100", "0.4500 ± 0.0100"]
  assert by_name["EASE^R"][1] == "this suite: MovieLens-1M 1 seed, closed form"
  assert by_name["EASE^R [Dacrema et al. 2019, quoted]"][2:6] == [
      "0.7192", "0.4494", "-", "-"]
  assert "SLIM [Dacrema et al. 2019, quoted]" in by_name
  assert by_name["MF, d = 192 [Rendle et al. 2020, quoted]"][2:4] == [
      "0.7294", "0.4523"]
  assert by_name["MF, d = 192 [Rendle et al. 2020, quoted]"][6:] == ["-", "-"]
  md = (tmp_path / "out" / "table1.md").read_text()
  assert md.count("\n") == 2 + len(table) and "[Dacrema et al. 2019" in md
  assert "| ml-100k HR@10 | ml-100k NDCG@10 |" in md.splitlines()[0]
  with open(tmp_path / "out" / "table1.csv") as f:
    assert len(list(csv.reader(f))) == 1 + len(table)


def test_ials_at_d64_has_its_own_row_beside_the_quoted_one(tmp_path):
  _fake_run(tmp_path / "a", "ials", 192, [0.72, 0.74], [0.44, 0.46], epoch=12)
  _fake_run(tmp_path / "b", "ials", 64, [0.70, 0.72], [0.43, 0.45], epoch=12)
  rows = report_runs.collect([tmp_path])
  names = [row[0] for row in report.table1(rows)]
  assert names.index("iALS, d = 64") == names.index("iALS, d = 192") + 1
  by_name = {row[0]: row for row in report.table1(rows)}
  assert by_name["iALS, d = 64"][2:4] == ["0.7100 ± 0.0100",
                                          "0.4400 ± 0.0100"]
  assert by_name["iALS, d = 64 [Rendle et al. 2022, quoted]"][2:4] == [
      "0.7220", "0.4450"]
  # Only d = 64: one row, not two.
  rows = report_runs.collect([tmp_path / "b"])
  assert [row[0] for row in report.table1(rows)].count("iALS, d = 64") == 1


def test_figure2_points_and_plot(runs, tmp_path):
  report.write_report([runs], tmp_path / "out")
  with open(tmp_path / "out" / "figure2.csv") as f:
    points = list(csv.DictReader(f))
  mf = [p for p in points if p["model"] == "mf" and p["dataset"] == "ml-1m"]
  assert [(p["d"], p["seeds"], p["hr@10_mean"], p["hr@10_std"])
          for p in mf] == [("64", "2", "0.7100", "0.0100"),
                           ("192", "3", "0.7333", "0.0047")]
  pytest.importorskip("matplotlib")
  png = (tmp_path / "out" / "figure2.png").read_bytes()
  assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_without_matplotlib_no_figure_is_claimed(runs, tmp_path,
                                                  monkeypatch):
  monkeypatch.setattr(report.plotting, "pyplot", lambda path: None)
  _, written = report.write_report([runs], tmp_path / "out")
  assert "figure2.png" not in written and "table1.md" in written
  assert not (tmp_path / "out" / "figure2.png").exists()


def test_runs_of_one_config_but_seed_merge_others_are_refused(runs,
                                                               tmp_path):
  for name, seed in (("s1", 1), ("s2", 2)):
    _fake_run(runs / "mlp" / name, "mlp", 64, [0.6 + seed / 100],
              [0.4 + seed / 100])
    (runs / "mlp" / name / "config.json").write_text(json.dumps(
        {"model": {"name": "mlp"}, "train": {"seed": seed, "epochs": 20}}))
  merged = [r for r in report_runs.collect([runs]) if r["model"] == "mlp"]
  assert len(merged) == 1
  assert merged[0]["hr"] == [0.61, 0.62] and len(merged[0]["paths"]) == 2
  _fake_run(runs / "mlp" / "s3", "mlp", 64, [0.7], [0.4])
  (runs / "mlp" / "s3" / "config.json").write_text(json.dumps(
      {"model": {"name": "mlp"}, "train": {"seed": 3, "epochs": 30}}))
  with pytest.raises(report_runs.ReportError, match=r"two runs of \('ml-1m', "
                     r"'mlp', 64\) that are not one config"):
    report_runs.collect([runs])


def test_missing_runs_are_refused(runs, tmp_path):
  with pytest.raises(report_runs.ReportError, match="no finished NCF run"):
    report_runs.collect([runs / "synthetic"])
  with pytest.raises(report_runs.ReportError, match="does not exist"):
    report_runs.collect([tmp_path / "nowhere"])


def test_report_cli_on_a_real_run(tmp_path):
  config = ncf_config.default_config()
  config.data.update(num_users=120, num_items=200)
  config.model.dim = 4
  config.train.update(epochs=2, num_seeds=2, batch_size=256)
  config.eval.every = 2
  ncf.run(config, tmp_path / "runs" / "mf4")
  cli = [sys.executable, "-m", "dot_vs_learned.report",
         f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}"]
  out = subprocess.run(cli, capture_output=True, text=True, check=True)
  assert f"1 runs -> {tmp_path / 'out'}: figure2.png, figure2.csv" in out.stdout
  rankings = (tmp_path / "out" / "rankings.md").read_text()
  assert rankings.startswith("# Sampled, corrected and full-ranking")
  assert "| mf d=4 | 2 |" in rankings
  with open(tmp_path / "out" / "figure2.csv") as f:
    (point,) = list(csv.DictReader(f))
  assert (point["dataset"], point["model"], point["d"]) == ("default", "mf",
                                                            "4")
  bad = subprocess.run(cli[:3] + [f"--runs={tmp_path / 'none'}",
                                  f"--out={tmp_path / 'o2'}"],
                       capture_output=True, text=True)
  assert bad.returncode == 1 and "error: --runs:" in bad.stderr


def _per_seed(**means):
  return {name: {"mean": v, "per_seed": [v]} for name, v in means.items()}


def test_rankings_table_and_the_order_of_each_estimator(tmp_path):
  # Sampled and rescaled rank A over B; CLS, BV and the full ranking B over A.
  for model, sampled, rescaled, cls, full in (("a", 0.9, 0.30, 0.10, 0.10),
                                              ("b", 0.8, 0.20, 0.15, 0.12)):
    path = tmp_path / model
    path.mkdir()
    final = {"epoch": 1, **_per_seed(**{
        "hr@10": sampled, "ndcg@10": sampled / 2,
        "rescaled/hr@10": rescaled, "rescaled/ndcg@10": rescaled / 2,
        "cls/hr@10": cls, "cls/ndcg@10": cls / 2,
        "bv/hr@10": cls, "bv/ndcg@10": cls / 2,
        "full/hr@10": full, "full/ndcg@10": full / 2})}
    (path / "results.json").write_text(json.dumps(
        {"model": model, "dataset": "d", "dim": 8, "final": final}))
  text = report.report_ranking.markdown(report_runs.collect([tmp_path]))
  assert ("| a d=8 | 1 | 0.9000 | 0.4500 | 0.3000 | 0.1500 | 0.1000 | "
          "0.0500 | 0.1000 | 0.0500 | 0.1000 | 0.0500 |") in text
  assert "Full-ranking order by hr@10: b d=8 > a d=8." in text
  assert "- sampled: another order: a d=8 > b d=8" in text
  assert "- rescaled: another order: a d=8 > b d=8" in text
  assert "- CLS: same order" in text and "- BV (gamma 0.1): same order" in text


def test_item_list_rows_at_another_k_are_reported(tmp_path):
  # A lists run judged at K = 10 only: no @20 columns, its seeds still
  # counted (from the metrics it has).
  (tmp_path / "ease").mkdir()
  final = {"epoch": 0, "full/recall@10": {"per_seed": [0.3, 0.5]},
           "full/ndcg@10": {"per_seed": [0.2, 0.2]}}
  (tmp_path / "ease" / "results.json").write_text(json.dumps(
      {"model": "ease", "dataset": "toy", "dim": 0, "final": final,
       "seconds": 2.0}))
  rows = report_runs.collect([tmp_path])
  assert report.report_lists.table(rows, "toy") == [
      ["ease", "this suite", "2", "closed form", "-", "-", "-",
       "0.4000 ± 0.1000", "0.2000 ± 0.0000", "2"]]


def _with_config(path, seed, **data):
  """config.json beside a fake run: train.seed `seed`, data fields `data`."""
  (path / "config.json").write_text(json.dumps(
      {"data": data, "model": {"name": "mf"},
       "train": {"seed": seed, "num_seeds": 2}, "eval": {"every": 2}}))


def test_each_run_counts_once_and_runs_sharing_seeds_are_refused(
    runs, tmp_path):
  # Overlapping --runs (the same folder twice, a folder and one below it).
  for paths in ([runs, runs], [runs, runs / "mf64", runs / "tune"]):
    rows = {(r["dataset"], r["model"], r["dim"]): r
            for r in report_runs.collect(paths)}
    assert len(rows) == 8 and rows["ml-1m", "mf", 64]["hr"] == [0.70, 0.72]
    assert len(rows["ml-1m", "mf", 192]["hr"]) == 3
  # A copied run folder, or a second process with the same train.seed:
  # seed i of a run is split i of jax.random.key(train.seed).
  _with_config(runs / "mf64", seed=0)
  shutil.copytree(runs / "mf64", runs / "mf64_copy")
  with pytest.raises(report_runs.ReportError, match=(
      rf"^two runs of \('ml-1m', 'mf', 64\) with train.seed=0, so the same "
      rf"seeds: {runs / 'mf64'} and {runs / 'mf64_copy'}; a copy\? give each "
      r"of a config's runs its own train.seed$")):
    report.write_report([runs], tmp_path / "out")
  assert not (tmp_path / "out").exists()
  _with_config(runs / "mf64_copy", seed=1)  # other seeds: merged
  (row,) = [r for r in report_runs.collect([runs])
            if (r["dataset"], r["model"], r["dim"]) == ("ml-1m", "mf", 64)]
  assert row["hr"] == [0.70, 0.72] * 2 and row["train_seeds"] == [0, 1]
  # A closed form is one fit whatever train.seed.
  for name, seed in (("ease", 0), ("ease2", 1)):
    if name == "ease2":
      shutil.copytree(runs / "ease", runs / name)
    _with_config(runs / name, seed)
  with pytest.raises(report_runs.ReportError, match=(
      r"^two runs of \('ml-1m', 'ease', 64\), a closed form \(one fit "
      r"whatever train.seed\): .*ease and .*ease2; pass one$")):
    report_runs.collect([runs])


def test_sampled_or_item_list_is_what_the_run_is(tmp_path):
  # An NCF run at eval.k=5 has hr@5 and full-ranking metrics, no hr@10:
  # not an item-list run, and not one for Figure 2 and Table 1.
  final = {"epoch": 1, "hr@5": {"per_seed": [0.5]},
           "ndcg@5": {"per_seed": [0.3]}, "full/hr@10": {"per_seed": [0.1]},
           "full/recall@10": {"per_seed": [0.1]}}
  run = tmp_path / "runs" / "k5"
  run.mkdir(parents=True)
  (run / "results.json").write_text(json.dumps(
      {"model": "mf", "dataset": "tiny", "dim": 8, "final": final}))
  message = (rf"^{run}: a sampled run at eval.k=5; Figure 2 and Table 1 "
             r"are at @10: rerun it with --config.eval.k=10 or leave it out "
             r"of --runs$")
  with pytest.raises(report_runs.ReportError, match=message):  # from its keys
    report.write_report([tmp_path / "runs"], tmp_path / "out")
  _with_config(run, seed=0, format="ncf")
  with pytest.raises(report_runs.ReportError, match=message):  # from its config
    report_runs.collect([tmp_path / "runs"])
  assert not (tmp_path / "out").exists()
  _with_config(run, seed=0, format="lists")
  (row,) = report_runs.collect([tmp_path / "runs"])
  assert not row["sampled"] and row["metrics"]["full/recall@10"] == [0.1]
  del final["full/hr@10"], final["full/recall@10"]
  (run / "results.json").write_text(json.dumps(
      {"model": "mf", "dataset": "tiny", "dim": 8, "final": final}))
  with pytest.raises(report_runs.ReportError, match=(
      rf"^{run}: an item-list run without full-ranking metrics")):
    report_runs.collect([tmp_path / "runs"])


@pytest.mark.parametrize("text, message", [
    ('{"model": "mf", garbage', r"unreadable \(JSONDecodeError: Expecting "
     r"property name enclosed in double quotes: line 1 column 17 \(char 16\)"
     r"\)"),
    ("", r"unreadable \(JSONDecodeError: Expecting value: line 1 column 1 "
     r"\(char 0\)\)"),
    ('["model", "dataset", "dim", "final"]',
     "a JSON list, not an object"),
    (json.dumps({"model": "mf", "dataset": "d", "dim": 8, "final": {
        "epoch": 1, "hr@10": {"mean": 0.5}, "ndcg@10": {"per_seed": [0.3]}}}),
     r"final\['hr@10'\] has no per_seed list of finite numbers"),
    # Python's json writes and reads NaN; no metric of a finished run is.
    (json.dumps({"model": "mf", "dataset": "d", "dim": 8, "final": {
        "epoch": 1, "hr@10": {"per_seed": [0.5, float("nan")]},
        "ndcg@10": {"per_seed": [0.3, 0.3]}}}),
     r"final\['hr@10'\] has no per_seed list of finite numbers"),
    (json.dumps({"model": "mf", "dataset": "d", "dim": [8], "final": {}}),
     "dim, final.epoch missing or of the wrong type"),
])
def test_a_bad_results_json_is_named_and_nothing_written(runs, tmp_path,
                                                         text, message):
  (runs / "mf64" / "results.json").write_text(text)
  with pytest.raises(report_runs.ReportError,
                     match=rf"^{runs / 'mf64' / 'results.json'}: {message}$"):
    report.write_report([runs], tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_a_bad_config_json_is_named(runs):
  (runs / "mf64" / "config.json").write_text("{")
  with pytest.raises(report_runs.ReportError, match=(
      rf"^{runs / 'mf64' / 'config.json'}: unreadable \(JSONDecodeError: ")):
    report_runs.collect([runs])


def test_a_bad_out_is_refused_before_writing(runs, tmp_path):
  (tmp_path / "afile").write_text("kept")
  for out, message in ((tmp_path / "afile",
                        f"{tmp_path / 'afile'} is not a folder"),
                       (tmp_path / "afile" / "o",
                        f"{tmp_path / 'afile'} is not a folder"),
                       ("/proc/foo", "not a place for results"),
                       ("", "an empty path")):
    with pytest.raises(report_runs.ReportError,
                       match=rf"^--out={out}: {message}"):
      report.write_report([runs], out)
  assert (tmp_path / "afile").read_text() == "kept"
  cli = [sys.executable, "-m", "dot_vs_learned.report", f"--runs={runs}",
         f"--out={tmp_path / 'afile'}"]
  bad = subprocess.run(cli, capture_output=True, text=True)
  assert bad.returncode == 1 and bad.stdout == ""
  assert bad.stderr.splitlines() == [
      f"error: --out={tmp_path / 'afile'}: {tmp_path / 'afile'} is not a "
      "folder"]


RECORDS = pathlib.Path(__file__).resolve().parent.parent / "runs"


def test_the_committed_run_records_make_the_report(tmp_path):
  """runs/ keeps the JSON and logs of the finished ML-1M runs that
  docs/results.md quotes. Today's code reads every one of them; each trained
  on NCF's own test files (their pinned checksums); together they are every
  run of Table 1 and Figure 2, each MF point at the paper's protocol (8
  seeds, epoch 256), with the seeds, epochs and HR@10 that docs quote."""
  rows, written = report.write_report([RECORDS], tmp_path / "out")
  assert {"table1.md", "figure2.csv"} <= set(written)
  pins = datasets.CHECKSUMS["ml-1m"]
  for row in rows:
    assert row["dataset"] == "ml-1m"
    for path in map(pathlib.Path, row["paths"]):
      inputs = json.loads((path / "inputs.json").read_text())
      tested = {pathlib.Path(name).name.removeprefix("ml-1m."): sha
                for name, sha in inputs.items() if ".holdout." not in name}
      assert {tested[name] for name in ("test.rating", "test.negative")} == {
          pins[name]["sha256"] for name in ("test.rating", "test.negative")}
  # Every run of runs/README.md, with the HR@10 docs/results.md quotes:
  # (model, d) -> (seeds, epoch, mean HR@10 to 4 places).
  got = {(row["model"], None if row["model"] in ("popularity", "ease")
          else row["dim"]): (len(row["hr"]), row["epoch"],
                             round(sum(row["hr"]) / len(row["hr"]), 4))
         for row in rows}
  assert got == {
      ("popularity", None): (1, 0, 0.4531), ("ease", None): (1, 0, 0.7182),
      ("ials", 64): (8, 12, 0.7216), ("ials", 192): (8, 12, 0.7287),
      ("neumf", 63): (8, 20, 0.6896), ("mf", 16): (8, 256, 0.6878),
      ("mf", 32): (8, 256, 0.7113), ("mf", 64): (8, 256, 0.7238),
      ("mf", 96): (8, 256, 0.7269), ("mf", 128): (8, 256, 0.7287),
      ("mf", 192): (8, 256, 0.7300)}
