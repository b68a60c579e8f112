"""comparison.md, comparison.csv and comparison.png of compare.py.

One row per model: the hyperparameters (and epochs) selected on the tuning
split, the tuning value they won with, then the final runs on the real
split: the metrics the dataset is judged by (sampled HR@k and NDCG@k, or
full-ranking recall@k and NDCG@k of item lists) and the full ranking's, as
mean ± std over seeds, and the seconds of tuning and of the final runs.
"""

from dot_vs_learned import ncf_config
from dot_vs_learned import plotting
from dot_vs_learned import results

FILES = ("comparison.md", "comparison.csv", "comparison.png")
_SHOWN = {"learning_rate": "lr", "reg": "lambda", "alpha0": "alpha0",
          "nu": "nu", "init_stddev": "sigma", "num_negatives": "m",
          "epochs": "epochs"}


def _metrics(out) -> list[str]:
  """The columns: the judged pair, then the full ranking's at eval.k."""
  judged = list(out["judged_by"])
  k = judged[0].split("@")[1]
  full = [f"full/hr@{k}", f"full/ndcg@{k}"] if out["sampled"] else []
  return judged + [m for m in full if m not in judged]


def selected(chosen) -> str:
  """"lr 0.01, lambda 0.003, m 8, epochs 32" ("-": nothing tuned)."""
  parts = [f"{label} {chosen[name]:g}" for name, label in _SHOWN.items()
           if name in chosen and not (name in ("num_negatives", "epochs")
                                      and not chosen[name])]  # EASE^R: 0
  return ", ".join(parts) or "-"


def table(out) -> list[list]:
  """[header, rows...]: strings for comparison.md and .csv."""
  metrics = _metrics(out)
  header = ["model", "selected on the tuning split", "tuning value", "seeds",
            *(f"{m} mean" for m in metrics), *(f"{m} std" for m in metrics),
            "tuning s", "final s"]
  rows = [header]
  for name, row in out["models"].items():
    final, chosen = row["final"], row["selected"]
    tuned = [v for k, v in chosen.items() if k.startswith("tuning_")]
    values = [final["final"].get(m) for m in metrics]
    rows.append([
        ncf_config.run_label(name, final["dim"]), selected(chosen),
        f"{tuned[0]:.4f}" if tuned else "-", str(final["num_seeds"]),
        *("-" if v is None else f"{v['mean']:.4f}" for v in values),
        *("-" if v is None else f"{v['std']:.4f}" for v in values),
        f"{row['tuning_seconds']:.0f}", f"{final['seconds']:.0f}"])
  return rows


def markdown(out) -> str:
  rows = table(out)
  metrics = _metrics(out)
  cells = [rows[0][:4] + metrics + rows[0][-2:]]
  for row in rows[1:]:
    n = len(metrics)
    means, stds = row[4:4 + n], row[4 + n:4 + 2 * n]
    cells.append(row[:4] + [m if s in ("-", "0.0000") or row[3] == "1"
                            else f"{m} ± {s}" for m, s in zip(means, stds)]
                 + row[-2:])
  lines = [f"# Every model tuned the same way on {out['dataset']}", "",
           f"Judged by {' then '.join(out['judged_by'])} on the tuning split "
           "(hyperparameters and epoch); the metrics are the final runs' on "
           "the real test file, mean ± std over seeds.", "",
           "| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
  lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
  return "\n".join(lines) + "\n"


def plot(out, path) -> bool:
  """Bars of the judged metrics per model (± std); False without
  matplotlib."""
  plt = plotting.pyplot(path)
  if plt is None:
    return False
  names = list(out["models"])
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  for ax, metric in zip(axes, out["judged_by"]):
    stats = [out["models"][n]["final"]["final"][metric] for n in names]
    ax.bar(range(len(names)), [s["mean"] for s in stats],
           yerr=[s["std"] for s in stats], capsize=3)
    ax.set_xticks(range(len(names)), names)
    ax.set_title(f"{out['dataset']}: {metric}, tuned")
    ax.grid(True, axis="y", alpha=0.3)
  plotting.save(fig, path)
  return True


def write(workdir, out) -> list[str]:
  """Writes the three files (the plot only with matplotlib)."""
  text = results.csv_text(table(out))
  results.write_atomically(workdir / FILES[0],
                           lambda f: f.write(markdown(out)))
  results.write_atomically(workdir / FILES[1], lambda f: f.write(text))
  return list(FILES[:2]) + ([FILES[2]] if plot(out, workdir / FILES[2])
                            else [])
