"""rankings.md: sampled, corrected and full-ranking metrics side by side.

For each finished run (a row of report_runs.collect: dataset, model, d)
the table gives HR@10 and NDCG@10 as the NCF protocol samples them, as each
correction of Krichene and Rendle (KDD 2020) estimates the full ranking from
the sampled ranks (rescaled, CLS, BV), and as the full ranking measures them
(ncf_eval.py). Below each dataset's table, one line per estimator says
whether it orders the runs as the full ranking does.
"""

import numpy as np

from dot_vs_learned import ncf_config

ESTIMATORS = (("sampled", ""), ("rescaled", "rescaled/"), ("CLS", "cls/"),
              ("BV (gamma 0.1)", "bv/"), ("full ranking", "full/"))
METRICS = ("hr@10", "ndcg@10")


def _mean(row, name):
  values = row["metrics"].get(name)
  return None if not values else float(np.mean(values))


def _label(row) -> str:
  return ncf_config.run_label(row["model"], row["dim"])


def order(rows, name) -> list[str]:
  """Run labels from best to worst by the mean of metric `name`."""
  scored = [(_mean(r, name), _label(r)) for r in rows]
  return [label for value, label in sorted(scored, key=lambda x: -x[0])]


def markdown(rows) -> str:
  """The tables of every dataset; runs without full ranking get '-'."""
  out = ["# Sampled, corrected and full-ranking metrics", ""]
  for dataset in sorted({r["dataset"] for r in rows}):
    runs = sorted((r for r in rows if r["dataset"] == dataset),
                  key=lambda r: (r["model"], r["dim"]))
    header = ["run", "seeds"] + [f"{label} {metric}" for label, _ in
                                 ESTIMATORS for metric in METRICS]
    out += [f"## {dataset}", "", "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header)]
    for r in runs:
      cells = [_label(r), str(len(r["hr"]))]
      for _, prefix in ESTIMATORS:
        for metric in METRICS:
          value = _mean(r, prefix + metric)
          cells.append("-" if value is None else f"{value:.4f}")
      out.append("| " + " | ".join(cells) + " |")
    out.append("")
    complete = [r for r in runs if all(
        _mean(r, p + m) is not None for _, p in ESTIMATORS for m in METRICS)]
    if len(complete) < 2:
      out += ["(Orders need two runs with full-ranking metrics.)", ""]
      continue
    for metric in METRICS:
      truth = order(complete, "full/" + metric)
      out.append(f"Full-ranking order by {metric}: {' > '.join(truth)}.")
      for label, prefix in ESTIMATORS[:-1]:
        got = order(complete, prefix + metric)
        verdict = "same order" if got == truth else (
            "another order: " + " > ".join(got))
        out.append(f"- {label}: {verdict}")
      out.append("")
  return "\n".join(out)
