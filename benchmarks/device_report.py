"""The device check's report: Markdown and JSON, goals first.

write_report(out, record) writes OUT/device_check.json (the record, with
each section's status, time, budget, error and result, and the goals) and
OUT/device_check.md, each through a temporary file and a rename: the check
rewrites both after every section, so a killed run keeps what it measured.
goals() holds issue 19's four goals on one H200 or H100, and agreement()
the test of the end-to-end run's quality against the CPU's.
"""

import json
import math

import device_runs  # benchmarks/ is on sys.path when the check runs
from dot_vs_learned import atomic

# README: MF on ML-1M, d = 192, 8 seeds, `batched` B = 1024, the 2-core CPU.
CPU_E2E = {"hr@10": (0.7290, 0.0014), "ndcg@10": (0.4524, 0.0007)}
CPU_SEEDS = 8


def agreement(final, reference=None) -> dict:
  """Per metric: does the run's mean agree with the CPU's within the seed
  spread: |mean - mean_CPU| <= 2 sqrt(sd^2 / n + sd_CPU^2 / 8), two
  standard errors of the difference of the two means over seeds."""
  out = {}
  for name, (cpu_mean, cpu_sd) in (reference or CPU_E2E).items():
    m = final[name]
    bound = 2 * math.sqrt(m["std"]**2 / len(m["per_seed"]) +
                          cpu_sd**2 / CPU_SEEDS)
    out[name] = {"mean": m["mean"], "std": m["std"], "cpu_mean": cpu_mean,
                 "cpu_std": cpu_sd, "difference": m["mean"] - cpu_mean,
                 "bound": bound, "agrees": abs(m["mean"] - cpu_mean) <= bound}
  return out


def _rows(sections, name):
  result = sections.get(name, {}).get("result") or {}
  return [r for r in result.get("rows", []) if "skipped" not in r]


def goals(sections) -> list[dict]:
  """The issue's four goals: what was measured, and whether it meets them."""
  out = []

  def goal(text, value, measured, met):
    out.append({"goal": text, "value": value, "measured": measured,
                "met": None if value is None else bool(met)})

  mf_rows = [r for r in _rows(sections, "mf") if r["method"] == "batched"]
  row = min(mf_rows, key=lambda r: (r["batch_size"], r["d"]), default=None)
  goal("MF `batched` >= 200 M examples/s at d = 64",
       row and row["examples_per_s"],
       row and f"{row['examples_per_s'] / 1e6:.2f} M/s at d = {row['d']}, "
       f"B = {row['batch_size']}", row and row["examples_per_s"] >= 200e6)
  neumf = [r for r in _rows(sections, "learned")
           if r["model"] == "neumf" and r["batch_size"] >= 2048]
  row = max(neumf, key=lambda r: r["examples_per_s"], default=None)
  goal("NeuMF training >= 50 M samples/s at a large batch",
       row and row["examples_per_s"],
       row and f"{row['examples_per_s'] / 1e6:.2f} M/s at batch "
       f"{row['batch_size']:,}", row and row["examples_per_s"] >= 50e6)
  text = "8-seed, 256-epoch d = 192 MF run < 5 min, with the CPU's quality"
  section = sections.get("e2e", {})
  run = section.get("result") or {}
  if "final" in run:
    same = all(a["agrees"] for a in agreement(run["final"]).values())
    goal(text, run["wall_s"], f"{run['wall_s']:.0f} s wall; quality "
         f"{'agrees' if same else 'differs'} ({run['seeds']} seeds, "
         f"{run['epochs']} epochs, d = {run['d']})",
         run["wall_s"] < 300 and same)
  elif section.get("status") == "timeout" and section["budget_s"] >= 300:
    done = (run.get("progress") or {}).get("epochs_done") or 0
    goal(text, section["budget_s"], f"not done in {section['budget_s']:.0f}"
         f" s (epoch {done} evaluated by then)", False)
  else:
    goal(text, None, None, None)
  dots = [r for r in _rows(sections, "retrieval") if r["method"] == "dot"]
  row = min(dots, key=lambda r: r["p50_ms"], default=None)
  goal("exact top-10 over 10^6 items < 1 ms p50", row and row["p50_ms"],
       row and f"{row['p50_ms']:.3f} ms p50 over n = {row['n']:,} (chunks of "
       f"{row['chunk_size']:,})", row and row["p50_ms"] < 1.0)
  return out


def _f(value, spec=".3g"):
  return "-" if value is None else format(value, spec)


def _table(header, rows) -> list[str]:
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
          ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _measured(row, cells, width) -> list:
  """The row's cells, or a note that it was skipped."""
  if "skipped" in row:
    return [f"skipped: {row['skipped']}"] + [""] * (width - 1)
  return cells()


def _md_environment(r):
  return [f"- {r['device']} x {r['device_count']} ({r['backend']}), memory "
          f"{_f(r['memory_gib'], '.1f')} GiB; Python {r['python']}",
          "- " + ", ".join(f"{k} {v}" for k, v in sorted(r["versions"].items())),
          f"- code {r['code_version']}, source sha256 "
          f"{r['source_sha256']}; XLA_FLAGS '{r['xla_flags']}'",
          "- modules from: " + ", ".join(f"{k} {v}" for k, v in
                                         r["modules"].items())]


def _md_mf(r):
  return _table(["d", "method", "batch", "examples/s", "warm-up s",
                 "device peak MiB"],
                [[x["d"], x["method"], f"{x['batch_size']:,}"] + _measured(
                    x, lambda x=x: [f"{x['examples_per_s'] / 1e6:.2f} M",
                                    _f(x["warmup_s"], ".1f"),
                                    _f(x["device_peak_mib"], ".0f")], 3)
                 for x in r.get("rows", [])])


def _md_learned(r):
  return _table(["model", "batch", "d", "examples/s", "s/epoch",
                 "warm-up s"],
                [[x["model"], f"{x['batch_size']:,}"] + _measured(
                    x, lambda x=x: [x["d"], f"{x['examples_per_s'] / 1e6:.2f} M",
                                    _f(x["seconds_per_epoch"]),
                                    _f(x["warmup_s"], ".1f")], 4)
                 for x in r.get("rows", [])])


def _md_retrieval(r):
  return _table(["method", "items per chunk", "n", "d", "p50 ms", "p99 ms",
                 "queries/s"],
                [[x["method"], f"{x['chunk_size']:,}", f"{x['n']:,}", x["d"],
                  f"{x['p50_ms']:.3f}", f"{x['p99_ms']:.3f}",
                  f"{x['queries_per_s']:,.0f}"] for x in r.get("rows", [])])


def _md_e2e(r):
  p = r.get("progress") or {}
  if "final" not in r:
    if not p.get("epochs_done"):
      return ["- no evaluation had been written yet"]
    return [f"- progress: epoch {p['epochs_done']} evaluated after "
            f"{_f(p.get('seconds'))} s, HR@10 {_f(p.get('hr@10'), '.4f')}; "
            f"evaluations (epoch, s): {p['evaluations']}"]
  lines = [f"- {r['data']}, d = {r['d']}, {r['seeds']} seeds vmapped, "
           f"{r['epochs']} epochs, B = {r['batch_size']}: wall "
           f"{r['wall_s']:.1f} s (data loading, compilation, evaluations and "
           f"checkpoints included), {r['run_s']:.1f} s in ncf.run after "
           "loading", ""]
  rows = [[name, f"{a['mean']:.4f} ± {a['std']:.4f}",
           f"{a['cpu_mean']:.4f} ± {a['cpu_std']:.4f}",
           f"{a['difference']:+.4f}", f"{a['bound']:.4f}",
           "yes" if a["agrees"] else "no"]
          for name, a in agreement(r["final"]).items()]
  return lines + _table(["metric", "this run", "CPU (README)", "difference",
                         "bound", "agrees"], rows) + [
      "", "Agreement: |mean - mean_CPU| <= 2 sqrt(sd^2 / n + sd_CPU^2 / 8), "
      "two standard errors of the difference of the two means over seeds "
      "(sd over seeds as results.summarize reports it)."]


def _md_drift(sections, name):
  r = sections[name].get("result") or {}
  if not r:
    return []
  diff, seconds = r.get("max_abs_diff", {}), r["seconds"] + [None]
  lines = _table(["XLA_FLAGS", "d / seeds / epochs", "run 1 s (compiles)",
                  "run 2 s", "max abs diff HR@10", "NDCG@10", "loss",
                  "parameters"],
                 [[f"'{r['xla_flags']}'", f"{r['d']} / {r['seeds']} / "
                   f"{r['epochs']}", _f(seconds[0], ".1f"),
                   _f(seconds[1], ".1f")] +
                  [_f(diff.get(k), ".2e") for k in ("hr", "ndcg", "loss",
                                                     "params")]])
  times = [(sections.get(n, {}).get("result") or {}).get("seconds", [])
           for n in ("drift", "drift_deterministic")]
  if name == "drift_deterministic" and all(len(t) == 2 for t in times):
    lines += ["", f"Cost of {device_runs.DETERMINISTIC}: run 2 takes "
              f"{times[1][1] / times[0][1]:.2f}x the time it takes without "
              "it."]
  return lines


def _md_synthetic(r):
  if "samples_per_s" not in r:
    return []
  rmse = r["rmse"]
  lines = [f"- cell d = {r['d']}, M = {r['num_users']:,}, multiplier "
           f"{r['multiplier']}, {r['seeds']} seeds, {r['epochs']} epoch: "
           f"{r['cell_s']:.1f} s = generate {r['generate_s']:.1f} (CPU, "
           f"from the start) + to device {r['to_device_s']:.1f} + compile "
           f"{r['compile_s']:.1f} + train {r['train_s']:.1f} + evaluate "
           f"{r['evaluate_s']:.1f}; {r['samples_per_s'] / 1e6:.2f} M "
           "samples/s (all seeds)",
           f"- RMSE test: MLP {rmse['mlp_test']:.4f}, dot "
           f"{rmse['dot_test']:.4f}, zero {rmse['zero_test']:.4f}"]
  if "grid_s" in r:
    lines.append(f"- full grid (synthetic.full_grid_estimate, "
                 f"{r['grid_shapes_measured']} (d, multiplier) shapes "
                 f"measured, the others counted as free): "
                 f"{r['grid_s'] / 3600:.2f} h ({r['grid_s']:.3g} s); samples"
                 "/s: " + ", ".join(f"{k} {v / 1e6:.3g} M" for k, v in
                                    r["grid_rates"].items()))
  return lines


def markdown(record) -> str:
  """The report: goals first, then each section with its status."""
  sections = record["sections"]
  env = sections.get("environment", {}).get("result") or {}
  lines = [f"# Device check ({record['mode']})", "",
           f"{env.get('device', 'device unknown')}; started "
           f"{record['started']}; {record['seconds']:.0f} s of the "
           f"{record['deadline_s']:.0f} s deadline.", ""]
  if record["mode"] == "quick":
    lines += ["Quick mode: tiny generated data on whatever device JAX "
              "finds; it checks the code paths, not the goals.", ""]
  lines += ["## Goals", ""] + _table(
      ["goal", "measured", "met"],
      [[g["goal"], g["measured"] or "not measured",
        {True: "yes", False: "no", None: "-"}[g["met"]]]
       for g in goals(sections)])
  render = {"environment": _md_environment, "mf": _md_mf,
            "learned": _md_learned, "retrieval": _md_retrieval,
            "e2e": _md_e2e, "synthetic": _md_synthetic}
  for name, s in sections.items():
    lines += ["", f"## {name}: {s['status']}" + (
        f", {s['seconds']:.1f} s of {s['budget_s']:.0f} s" if "seconds" in s
        else ""), ""]
    if s.get("error"):
      lines += ["```", *s["error"].strip().splitlines()[-12:], "```", ""]
    if name.startswith("drift"):
      lines += _md_drift(sections, name)
    elif s.get("result"):
      lines += render[name](s["result"])
  return "\n".join(lines) + "\n"


def _finite(value):
  """JSON-safe: non-finite floats become None, numpy scalars plain."""
  if isinstance(value, dict):
    return {str(k): _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if hasattr(value, "item") and not isinstance(value, (str, bytes)):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_report(out, record) -> None:
  """device_check.json and .md, each through a temporary file and a rename."""
  record = _finite(dict(record, goals=goals(record["sections"])))
  for name, text in (("device_check.json",  # sections in the order run
                      json.dumps(record, indent=2) + "\n"),
                     ("device_check.md", markdown(record))):
    atomic.write(out / name, lambda f, text=text: f.write(text))
