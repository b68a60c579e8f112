"""Figure 2 and Table 1 of the paper from saved runs, by one command.

python -m dot_vs_learned.report --runs=DIR[,DIR...] --out=DIR

Every finished NCF run (a results.json with model, dataset and dim) found
under the given folders counts once, tuning workdirs' final_d*/ runs
included; a run that cannot be read, a sampled run at another K than 10, or
two runs with the same seeds, is refused in one line before anything is
written. Writes into --out:
  figure2.png  HR@10 and NDCG@10 against d, a line per model with error bars
               (std over seeds), a row of panels per dataset; the NCF
               paper's MLP and NeuMF values dashed, labelled quoted
               (popularity is in the table only);
  figure2.csv  our points: dataset, model, d, seeds, means, stds;
  table1.md, table1.csv  Popularity, NeuMF (without and with pretraining),
               MF, iALS and EASE^R from our runs (each at its largest d;
               iALS also at d = 64, the d of its quoted 2022 row) beside
               the rows quoted in the paper's Table 1 and for the
               baselines, labelled with their sources (SLIM is quoted only);
  rankings.md  sampled, corrected and full-ranking HR@10 / NDCG@10 of every
               run, and whether each estimator orders the models as the
               full ranking does (report_ranking.py);
  full_ranking.md, full_ranking.csv  runs on item-list datasets (Gowalla),
               which have no sampled metrics and so are in none of the
               above: Recall@20 / NDCG@20 (and @10), seeds, hyperparameters
               and time beside the published rows (report_lists.py).
Figure 3 and its table (report_synthetic.py) are written by the §4 grid
itself (synthetic.py) into its workdir.
"""

import csv
import io
import pathlib
import sys

from absl import app
from absl import flags
import numpy as np

from dot_vs_learned import distributed
from dot_vs_learned import ncf_config
from dot_vs_learned import plotting
from dot_vs_learned import quoted
from dot_vs_learned import report_lists
from dot_vs_learned import report_ranking
from dot_vs_learned import report_runs
from dot_vs_learned import results
from dot_vs_learned import workdir as workdir_lib

NAMES = {"mf": "MF (dot product)", "gmf": "GMF", "mlp": "MLP",
         "neumf": "NeuMF", "neumf_pretrained": "NeuMF pretrained",
         "popularity": "Popularity", "ials": "iALS", "ease": "EASE^R"}
DATASETS = {"ml-1m": "MovieLens-1M", "pinterest-20": "Pinterest"}


def _stats(values):
  values = np.asarray(values, dtype=np.float64)
  return values.mean(), values.std()


def figure2_csv(rows) -> str:
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(["dataset", "model", "d", "seeds", "epoch", "hr@10_mean",
                   "hr@10_std", "ndcg@10_mean", "ndcg@10_std"])
  for r in sorted(rows, key=lambda r: (r["dataset"], r["model"], r["dim"])):
    hr, ndcg = _stats(r["hr"]), _stats(r["ndcg"])
    writer.writerow([r["dataset"], r["model"], r["dim"], len(r["hr"]),
                     r["epoch"], f"{hr[0]:.4f}", f"{hr[1]:.4f}",
                     f"{ndcg[0]:.4f}", f"{ndcg[1]:.4f}"])
  return out.getvalue()


def figure2(rows, path) -> bool:
  """Draws Figure 2 into `path`; False (nothing drawn) without matplotlib."""
  plt = plotting.pyplot(path)
  if plt is None:
    return False
  datasets = sorted({r["dataset"] for r in rows})
  fig, axes = plt.subplots(len(datasets), 2, squeeze=False,
                           figsize=(10, 3.8 * len(datasets)))
  for ax_row, dataset in zip(axes, datasets):
    ours = [r for r in rows if r["dataset"] == dataset
            and r["model"] not in ncf_config.CLOSED_FORM]
    for j, metric in enumerate(("hr", "ndcg")):
      ax = ax_row[j]
      for model in [m for m in NAMES if any(r["model"] == m for r in ours)]:
        points = sorted((r["dim"], *_stats(r[metric])) for r in ours
                        if r["model"] == model)
        d, mean, std = zip(*points)
        ax.errorbar(d, mean, yerr=std, marker="o", capsize=3,
                    label=NAMES[model])
      for label, table, per_factor in quoted.NCF_SERIES:
        if dataset in table:
          points = sorted((per_factor * k, v[j])
                          for k, v in table[dataset].items())
          ax.plot(*zip(*points), ls="--", marker="x", label=label)
      ax.set(xlabel="embedding dimension d", title=
             f"{DATASETS.get(dataset, dataset)}: {metric.upper()}@10")
      ax.grid(True, alpha=0.3)
    ax_row[1].legend(fontsize=7)
  plotting.save(fig, path)
  return True


def table_datasets(rows) -> list[str]:
  """Table 1's columns: the paper's datasets, then any other of the runs."""
  return list(DATASETS) + sorted({r["dataset"] for r in rows} - set(DATASETS))


def table1(rows) -> list[list[str]]:
  """Rows: method, source, then HR@10 and NDCG@10 per dataset.

  The quoted rows have values on the paper's datasets only ("-" elsewhere).
  """
  datasets = table_datasets(rows)
  table = []

  def ours(model, label, dim=None):
    found = {}
    for dataset in datasets:
      runs = sorted((r for r in rows if r["dataset"] == dataset
                     and r["model"] in model and dim in (None, r["dim"])),
                    key=lambda r: r["dim"])
      if runs:
        found[dataset] = runs[-1]
    if not found:
      return
    dims = sorted({r["dim"] for r in found.values()})
    closed = model[0] in ncf_config.CLOSED_FORM
    name = label if closed else f"{label}, d = {'/'.join(map(str, dims))}"
    cells = [name, "this suite: " + "; ".join(
        f"{DATASETS.get(d, d)} {len(r['hr'])} seed"
        f"{'s' * (len(r['hr']) > 1)}, "
        + ("closed form" if closed else f"epoch {r['epoch']}")
        for d, r in found.items())]
    for dataset in datasets:
      r = found.get(dataset)
      for metric in ("hr", "ndcg"):
        if r is None:
          cells.append("-")
        else:
          mean, std = _stats(r[metric])
          cells.append(f"{mean:.4f} ± {std:.4f}" if len(r[metric]) > 1
                       else f"{mean:.4f}")
    table.append(cells)

  ours(("popularity",), "Popularity")
  ours(("neumf",), "NeuMF")
  ours(("neumf_pretrained",), "NeuMF pretrained")
  ours(("mf",), "Matrix factorization")
  ours(("ials",), "iALS")
  if any(r["model"] == "ials" and r["dim"] > 64 for r in rows):
    ours(("ials",), "iALS", dim=64)  # beside Rendle et al. 2022's d = 64
  ours(("ease",), "EASE^R")
  for method, values in quoted.TABLE1.items():
    cells = [method, "quoted"]
    for dataset in datasets:
      cells += ([f"{v:.4f}" for v in values[dataset]] if dataset in values
                else ["-", "-"])
    table.append(cells)
  return table


def table1_markdown(table, datasets) -> str:
  header = ["method", "source"] + [f"{DATASETS.get(d, d)} {m}"
                                   for d in datasets
                                   for m in ("HR@10", "NDCG@10")]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in table]
  return "\n".join(lines) + "\n"


def make_out(out_dir) -> pathlib.Path:
  """--out as a writable folder, made if need be; ReportError otherwise."""
  try:
    out = workdir_lib.check_path(out_dir, "--out")
    out.mkdir(parents=True, exist_ok=True)
  except results.WorkdirError as e:
    raise report_runs.ReportError(str(e)) from None
  except OSError as e:
    raise report_runs.ReportError(
        f"--out={out_dir}: cannot create it ({e.strerror})") from None
  return out


def write_report(paths, out_dir) -> tuple[list[dict], list[str]]:
  """Writes the report of the runs under `paths`; returns the runs' rows and
  the names of the files written."""
  rows = report_runs.collect(paths)
  sampled = [r for r in rows if r["sampled"]]
  listed = [r for r in rows if not r["sampled"]]
  texts = {}
  if sampled:
    table, datasets = table1(sampled), table_datasets(sampled)
    texts = {"figure2.csv": figure2_csv(sampled),
             "table1.md": table1_markdown(table, datasets),
             "table1.csv": results.csv_text([["method", "source"] + [
                 f"{d}_{m}" for d in datasets
                 for m in ("hr@10", "ndcg@10")]] + table),
             "rankings.md": report_ranking.markdown(sampled)}
  if listed:
    texts.update({"full_ranking.md": report_lists.markdown(listed),
                  "full_ranking.csv": results.csv_text(
                      report_lists.csv_rows(listed))})
  out = make_out(out_dir)  # after every check: bad runs write nothing
  for name, text in texts.items():
    results.write_atomically(out / name, lambda f, t=text: f.write(t))
  drawn = (["figure2.png"] if sampled and figure2(sampled,
                                                   out / "figure2.png")
           else [])
  return rows, drawn + list(texts)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    rows, written = write_report(_RUNS.value, _OUT.value)
  except report_runs.ReportError as e:
    sys.exit(f"error: {e}")
  print(f"{len(rows)} runs -> {_OUT.value}: {', '.join(written)}")
  sampled = [r for r in rows if r["sampled"]]
  if sampled:
    print(table1_markdown(table1(sampled), table_datasets(sampled)))
  if len(sampled) < len(rows):
    print(report_lists.markdown([r for r in rows if not r["sampled"]]))


if __name__ == "__main__":
  _RUNS = flags.DEFINE_list("runs", None, "folders holding finished runs.")
  _OUT = flags.DEFINE_string("out", None, "where the report goes.")
  flags.mark_flags_as_required(["runs", "out"])
  distributed.quiet_backend_probe()
  app.run(main)
