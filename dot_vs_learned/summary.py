"""What a researcher reads of a finished NCF run: summary.md and curves.png.

summary.md holds the final metrics (mean ± std over seeds, and per seed),
the config fields that define the run, its time and the environment;
curves.png the training loss and the two metrics the run is judged by
(results.json's judged_by: HR@K and NDCG@K, or full-ranking recall@K and
NDCG@K on item lists) against the epoch (a line per stage), when
matplotlib is installed. `environment()` goes into results.json too, so
every result says which code and which JAX made it.
"""

import datetime
import functools
import importlib.metadata
import pathlib
import subprocess

from dot_vs_learned import distributed
from dot_vs_learned import ncf_config
from dot_vs_learned import plotting
from dot_vs_learned import results

SUMMARY = "summary.md"
CURVES = "curves.png"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
  """The git commit of the package's checkout (with '+dirty' for local
  changes), else the installed package's version: as at the first call in
  the process (main.py calls it at start), which is the code that runs, even
  when the checkout changes while a long command trains."""
  root = pathlib.Path(__file__).resolve().parents[1]
  try:
    commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                            capture_output=True, text=True, timeout=10,
                            check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True,
                           text=True, timeout=10, check=True).stdout.strip()
    return commit + ("+dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    try:
      return importlib.metadata.version("dot_vs_learned")
    except importlib.metadata.PackageNotFoundError:
      return "unknown"


def environment() -> dict:
  """Code version, JAX version, backend, device and date of a result."""
  import jax  # pylint: disable=g-import-not-at-top
  return {"code_version": code_version(), "jax": jax.__version__,
          "backend": jax.default_backend(),
          "device": jax.devices()[0].device_kind,
          "device_count": jax.device_count(),
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds")}


def _metric_names(record) -> list[str]:
  return [name for name, value in record.items()
          if isinstance(value, dict) and "mean" in value]


def markdown(config, final) -> str:
  """summary.md of a finished run (results.json's dict)."""
  m, t = config.model, config.train
  last = final["final"]
  closed = m.name in ncf_config.CLOSED_FORM
  when = ("Closed form (one fit, no epochs)" if closed else
          f"Final epoch {last['epoch']} of {t.epochs}")
  label = ncf_config.run_label(m.name, m.dim)
  lines = [f"# {label} on {final['dataset']}", "",
           f"{when}, {final['num_seeds']} seed(s) (train.seed={t.seed}), "
           f"{final['seconds']:.0f} s.", "",
           "| metric | mean ± std over seeds | per seed |", "|---|---|---|"]
  for name in _metric_names(last):
    v = last[name]
    per_seed = " / ".join(f"{x:.4f}" for x in v["per_seed"])
    lines.append(f"| {name} | {v['mean']:.4f} ± {v['std']:.4f} | "
                 f"{per_seed} |")
  if m.name in ("popularity", "ease"):  # what defines each model's run
    fields = {"model.name": m.name,
              **({"train.reg": t.reg} if m.name == "ease" else {})}
  elif m.name == "ials":
    fields = {"model.name": m.name, "model.dim": m.dim, "train.reg": t.reg,
              "ials.alpha0": config.ials.alpha0, "ials.nu": config.ials.nu,
              "ials.solver": config.ials.solver,
              "train.epochs": t.epochs, "train.init_stddev": t.init_stddev}
  else:
    fields = {"model.name": m.name, "model.dim": m.dim,
              **({"model.hidden": tuple(m.hidden) or "NCF's rule"}
                 if m.name in ("mlp", "neumf", "neumf_pretrained") else {}),
              "train.optimizer": t.optimizer,
              "train.learning_rate": t.learning_rate, "train.reg": t.reg,
              "train.num_negatives": t.num_negatives,
              "train.batch_size": t.batch_size, "train.epochs": t.epochs,
              "train.init_stddev": t.init_stddev}
  fields.update({"data.name": config.data.name,
                 "data.dir": config.data.dir or "-"})
  lines += ["", "| config | value |", "|---|---|"]
  lines += [f"| {k} | {v} |" for k, v in fields.items()]
  env = final.get("environment", {})
  lines += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in
                                             env.items()), "",
            "The reported result is the configured final epoch (paper §3.4);"
            " every evaluation is in metrics.jsonl.", ""]
  return "\n".join(lines)


def plot_curves(records, path, names) -> bool:
  """The loss and the metrics `names` (the run's judged_by: HR@k and
  NDCG@k, or full recall@k and NDCG@k) against the epoch; False without
  matplotlib."""
  trained = [r for r in records if "loss" in r]
  plt = plotting.pyplot(path) if trained else None
  if plt is None:
    return False
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
  stages = list(dict.fromkeys(r.get("stage", "") for r in trained))
  for stage in stages:
    rows = [r for r in trained if r.get("stage", "") == stage]
    epochs = [r["epoch"] for r in rows]
    for ax, name in zip(axes, ("loss", *names)):
      mean = [r[name]["mean"] for r in rows]
      std = [r[name]["std"] for r in rows]
      ax.errorbar(epochs, mean, yerr=std, marker="o", markersize=3,
                  capsize=2, label=stage or None)
      ax.set_xlabel("epoch")
      ax.set_title(name)
  if len(stages) > 1:
    axes[0].legend()
  plotting.save(fig, path)
  return True


def write(workdir, config, final) -> list[str]:
  """Writes summary.md and curves.png; returns the names written."""
  if not distributed.is_writer():
    return []
  workdir = pathlib.Path(workdir)
  results.write_atomically(workdir / SUMMARY,
                           lambda f: f.write(markdown(config, final)))
  written = [SUMMARY]
  k = config.eval.k
  if plot_curves(results.read_metrics(workdir), workdir / CURVES,
                 final.get("judged_by", (f"hr@{k}", f"ndcg@{k}"))):
    written.append(CURVES)
  return written
