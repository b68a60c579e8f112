"""The finished NCF runs under report's --runs, as its rows.

Each results.json is read once (by resolved path, however the folders
overlap) and checked: a file that is not a run's JSON object, a metric
without per-seed numbers, a sampled run without HR@10 (Figure 2 and Table 1
are at @10), an item-list run without full-ranking metrics, or two runs of
one (dataset, model, d) that are not one config with other seeds is refused
by a one-line ReportError naming the file or folders. Runs of one config
with different train.seed (seeds trained as separate processes) become one
row with their seeds together.
"""

import math
import pathlib
import re

from dot_vs_learned import ncf_config
from dot_vs_learned import results

_SAMPLED_HR = re.compile(r"hr@([0-9]+)")  # the NCF protocol's; not full/hr@K


class ReportError(ValueError):
  """The runs cannot make a report; the message says which."""


def _is_number(value) -> bool:
  """A finite int or float (JSON's NaN and Infinity are no metric)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def _read_json(path) -> dict:
  """A run's JSON file; ReportError naming it unless it holds an object."""
  try:
    return results.read_json_object(path)
  except results.JSONFileError as e:
    raise ReportError(f"{path}: {e}") from None


def _config_but_seed(run_dir):
  """(the run's config.json without what leaves final metrics unchanged:
  train.seed, eval.every and checkpoint; its train.seed), (None, None)
  without one."""
  path = pathlib.Path(run_dir) / results.CONFIG
  if not path.exists():
    return None, None
  config = _read_json(path)
  train, evaluation = config.get("train"), config.get("eval")
  seed = train.pop("seed", None) if isinstance(train, dict) else None
  if isinstance(evaluation, dict):
    evaluation.pop("every", None)
  config.pop("checkpoint", None)
  return config, seed


def _per_seed(path, final, name) -> list:
  """final[name]["per_seed"] of results.json `path`: a number per seed."""
  values = final.get(name)
  values = values.get("per_seed") if isinstance(values, dict) else None
  if not (isinstance(values, list) and values and
          all(map(_is_number, values))):
    raise ReportError(f"{path}: final[{name!r}] has no per_seed list of "
                      "finite numbers")
  return list(values)


def _is_sampled(config, final) -> bool:
  """Judged on sampled negatives (NCF files), not on item lists: from the
  config's data.format, else from any sampled hr@K among the metrics."""
  data = (config or {}).get("data")
  if isinstance(data, dict) and "format" in data:
    return data["format"] != "lists"
  return any(_SAMPLED_HR.fullmatch(name) for name in final)


def _read_run(path, k) -> dict | None:
  """The row of one results.json; None for another experiment's results."""
  run = _read_json(path)
  if not {"model", "dataset", "dim", "final"} <= set(run):
    return None  # another experiment's results
  final = run["final"]
  bad = [name for name, ok in (
      ("model", isinstance(run["model"], str)),
      ("dataset", isinstance(run["dataset"], str)),
      ("dim", type(run["dim"]) is int),
      ("final.epoch", isinstance(final, dict) and
       _is_number(final.get("epoch"))),
      ("seconds", _is_number(run.get("seconds", 0.0)))) if not ok]
  if bad:
    raise ReportError(f"{path}: {', '.join(bad)} missing or of the wrong "
                      "type")
  metrics = {name: _per_seed(path, final, name) for name, value in
             final.items() if isinstance(value, dict)}
  config, seed = _config_but_seed(path.parent)
  sampled = _is_sampled(config, final)
  if sampled and f"hr@{k}" not in final:
    ks = sorted(int(m[1]) for m in map(_SAMPLED_HR.fullmatch, final) if m)
    raise ReportError(
        f"{path.parent}: a sampled run at eval.k="
        f"{'/'.join(map(str, ks)) or '(none)'}; Figure 2 and Table 1 are at "
        f"@{k}: rerun it with --config.eval.k={k} or leave it out of --runs")
  if not sampled and not any(name.startswith("full/") for name in metrics):
    raise ReportError(f"{path.parent}: an item-list run without "
                      "full-ranking metrics (full/recall@K), all that "
                      "full_ranking.md reports")
  return {"dataset": run["dataset"], "model": run["model"],
          "dim": run["dim"], "epoch": final["epoch"], "sampled": sampled,
          "hr": _per_seed(path, final, f"hr@{k}") if sampled else [],
          "ndcg": _per_seed(path, final, f"ndcg@{k}") if sampled else [],
          "seconds": [run.get("seconds", 0.0)], "paths": [str(path.parent)],
          "train_seeds": [seed], "config": config, "metrics": metrics}


def _merge(row, other, key) -> None:
  """Adds `other`'s seeds to `row`: two runs of one config, other seeds."""
  where = f"{row['paths'][0]} and {other['paths'][0]}"
  if row["config"] is None or row["config"] != other["config"]:
    raise ReportError(
        f"two runs of {key} that are not one config with other seeds: "
        f"{where}; pass folders that hold one config per model and d")
  if key[1] in ncf_config.CLOSED_FORM:
    raise ReportError(f"two runs of {key}, a closed form (one fit whatever "
                      f"train.seed): {where}; pass one")
  seed = other["train_seeds"][0]
  if seed in row["train_seeds"]:
    # Seed i of a run is split i of jax.random.key(train.seed) (ncf.py),
    # whatever train.num_seeds: the same train.seed repeats its seeds.
    same = row["paths"][row["train_seeds"].index(seed)]
    raise ReportError(
        f"two runs of {key} with train.seed={seed}, so the same seeds: "
        f"{same} and {other['paths'][0]}; a copy? give each of a config's "
        "runs its own train.seed")
  for name in ("hr", "ndcg", "seconds", "paths", "train_seeds"):
    row[name] += other[name]
  for name, values in other["metrics"].items():
    row["metrics"].setdefault(name, []).extend(values)


def collect(paths, k=10) -> list[dict]:
  """One row per (dataset, model, d) of the finished NCF runs under `paths`.

  Each results.json counts once, however the folders overlap. Runs of one
  config that differ only in train.seed (seeds trained as separate
  processes), eval.every or checkpoint are one row with their seeds
  together; two such runs with one train.seed (the same seeds), or of the
  same dataset, model and d that differ otherwise, are refused.
  """
  rows, seen = {}, set()
  for root in map(pathlib.Path, paths):
    if not root.exists():
      raise ReportError(f"--runs: {root} does not exist")
    for path in sorted(root.rglob(results.RESULTS)):
      if path.resolve() in seen:
        continue  # overlapping --runs folders
      seen.add(path.resolve())
      row = _read_run(path, k)
      if row is None:
        continue
      key = (row["dataset"], row["model"], row["dim"])
      if key in rows:
        _merge(rows[key], row, key)
      else:
        rows[key] = row
  if not rows:
    raise ReportError(f"--runs: no finished NCF run (results.json) under "
                      f"{', '.join(map(str, paths))}")
  return list(rows.values())
