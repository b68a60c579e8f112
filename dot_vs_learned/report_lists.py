"""full_ranking.md / .csv: runs on item-list datasets beside published rows.

Item-list splits (Gowalla of LightGCN; data.format="lists") have no sampled
negatives, so Figure 2, Table 1 and rankings.md (all sampled HR@10) leave
them out. Here every such run (a row of report_runs.collect) is one line per
(dataset, model, d): its seeds, final epoch, the hyperparameters of its
config, Recall@K and NDCG@K of the full ranking (mean ± std over seeds) at
K = 20, the published protocol's cut-off, and 10, and its wall time; the
published rows of quoted.FULL_RANKING follow, labelled quoted.
"""

import numpy as np

from dot_vs_learned import ncf_config
from dot_vs_learned import quoted

ORDER = ("popularity", "mf", "ials", "ease", "gmf", "mlp", "neumf",
         "neumf_pretrained")
METRICS = tuple(f"{name}@{k}" for k in (quoted.FULL_RANKING_K, 10)
                for name in ("recall", "ndcg"))
HEADER = ["method", "source", "seeds", "epoch", "hyperparameters",
          *(f"Recall@{m.split('@')[1]}" if m.startswith("recall") else
            f"NDCG@{m.split('@')[1]}" for m in METRICS), "seconds"]


def hyperparameters(model, config) -> str:
  """What sets a run of `model`, from its config.json (a dict)."""
  if not config:
    return "-"
  t = config.get("train", {})
  if model == "popularity":
    return "-"
  if model == "ease":
    return f"lambda {t.get('reg')}"
  if model == "ials":
    ials = config.get("ials", {})
    return (f"lambda {t.get('reg')}, alpha0 {ials.get('alpha0')}, "
            f"{ials.get('solver')}, sigma {t.get('init_stddev')}")
  return (f"{t.get('optimizer')} lr {t.get('learning_rate')}, lambda "
          f"{t.get('reg')}, m {t.get('num_negatives')}, batch "
          f"{t.get('batch_size')}, sigma {t.get('init_stddev')}")


def _cell(values) -> str:
  if not values:
    return "-"
  mean = float(np.mean(values))
  if len(values) == 1:
    return f"{mean:.4f}"
  return f"{mean:.4f} ± {float(np.std(values)):.4f}"


def table(rows, dataset) -> list[list[str]]:
  """Our runs on `dataset` (report_runs.collect rows), then the quoted rows."""
  ours = sorted((r for r in rows if r["dataset"] == dataset),
                key=lambda r: (ORDER.index(r["model"]) if r["model"] in
                               ORDER else len(ORDER), r["dim"]))
  out = []
  for r in ours:
    closed = r["model"] in ncf_config.CLOSED_FORM
    # Counted from any full-ranking metric: eval.k may not be 20.
    seeds = len(next(v for name, v in r["metrics"].items()
                     if name.startswith("full/")))
    out.append([ncf_config.run_label(r["model"], r["dim"]), "this suite",
                str(seeds), "closed form" if closed else str(r["epoch"]),
                hyperparameters(r["model"], r["config"]),
                *(_cell(r["metrics"].get(f"full/{m}")) for m in METRICS),
                f"{max(r['seconds']):.0f}"])
  for method, values in quoted.FULL_RANKING.get(dataset, {}).items():
    out.append([method, "quoted", "-", "-", "-",
                *(f"{v:.4f}" for v in values), "-", "-", "-"])
  return out


def datasets(rows) -> list[str]:
  return sorted({r["dataset"] for r in rows})


def markdown(rows) -> str:
  out = ["# Full ranking on item-list datasets", "",
         f"Recall@K and NDCG@K over every item a user has no training pair "
         f"with; mean ± std over seeds at the final epoch. Quoted rows are "
         f"at K = {quoted.FULL_RANKING_K}, embedding size 64. seconds: the "
         "longest of the run's processes.", ""]
  for dataset in datasets(rows):
    out += [f"## {dataset}", "", "| " + " | ".join(HEADER) + " |",
            "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in table(rows, dataset)]
    out.append("")
  return "\n".join(out)


def csv_rows(rows) -> list[list[str]]:
  """full_ranking.csv: a dataset column, then the table's."""
  return [["dataset", *HEADER]] + [
      [dataset, *row] for dataset in datasets(rows)
      for row in table(rows, dataset)]
