"""The serving-cost benchmark of paper §5: exact dot, an ANN index, MLP scoring.

For each catalogue size n and dimension d it measures, for top-k retrieval of
one user at a time: latency (p50, p99) and queries/s of
  dot:  exact maximum inner product, chunked matmul + top-k (retrieval.top_k);
  ann:  a faiss index (default HNSW) at the smallest search setting whose
        recall@k against `dot` reaches the target; build time and size too;
  mlp:  NCF's MLP (embedding d per side, hidden [2d, d, d/2]) scoring all n
        items, its first layer split per side (retrieval.py), then top-k.
Embeddings are generated (N(0, 1)) unless `retrieval.embeddings_from` names
a finished MF run, whose item and user tables are used (n and d are then the
run's). The MLP's weights are random: its cost does not depend on them.
Rows go to metrics.jsonl as they are measured; results.json, retrieval.md and
retrieval.png (with matplotlib) are written at the end.
"""

import pathlib
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import checks
from dot_vs_learned import models
from dot_vs_learned import plotting
from dot_vs_learned import results
from dot_vs_learned import retrieval
from dot_vs_learned import serving_config
from dot_vs_learned import workdir as workdir_lib

# configs/retrieval.py's defaults; fields and validation: serving_config.py.
default_config = serving_config.default_config


def _time_queries(search, queries, r) -> np.ndarray:
  """Seconds of search(one query) for each query, one at a time."""
  search(queries[:1])  # compiles / warms up
  seconds, start = [], time.perf_counter()
  for q in queries[:r.latency_queries]:
    if len(seconds) >= 5 and time.perf_counter() - start > r.max_seconds:
      break
    t = time.perf_counter()
    search(q[None])
    seconds.append(time.perf_counter() - t)
  return np.asarray(seconds)


def _throughput(search, queries, batch, max_seconds) -> float:
  """Queries/s of search on batches of `batch` queries, after a warm-up;
  repeated for up to min(1 s, max_seconds)."""
  search(queries[:batch])
  calls, start = 0, time.perf_counter()
  while calls == 0 or time.perf_counter() - start < min(1.0, max_seconds):
    search(queries[:batch])
    calls += 1
  return calls * batch / (time.perf_counter() - start)


def _row(method, n, d, seconds, qps, **extra) -> dict:
  return {"method": method, "n": n, "d": d, "queries": int(seconds.size),
          "p50_ms": float(np.percentile(seconds, 50) * 1e3),
          "p99_ms": float(np.percentile(seconds, 99) * 1e3),
          "queries_per_s": qps, **extra}


def _dot_rows(items, queries, r, n, d):
  """Exact dot; then the ANN index against it. Returns rows."""
  catalog = retrieval.make_catalog(retrieval.Items(dot=jnp.asarray(items)),
                                   r.chunk_size)

  def exact(q):
    query = retrieval.Query(jnp.zeros(len(q)), dot=jnp.asarray(q))
    return jax.block_until_ready(retrieval.top_k(query, catalog,
                                                 retrieval.Tail(), r.k))

  rows = []
  recall_set = queries[:r.recall_queries]
  exact_ids = np.asarray(exact(recall_set)[1])
  if "dot" in r.methods:
    rows.append(_row("dot", n, d, _time_queries(exact, queries, r),
                     _throughput(exact, queries, r.batch_size, r.max_seconds)))
  if "ann" in r.methods:
    start = time.perf_counter()
    index = retrieval.build_index(items, r.index, r.ef_construction, r.seed)
    build = time.perf_counter() - start
    curve = {}
    for value in r.search_values if r.search_parameter else ("-",):
      if r.search_parameter:
        retrieval.set_search_parameter(index, r.search_parameter, value)
      ids = retrieval.index_top_k(index, recall_set, r.k)[1]
      curve[value] = retrieval.recall_at_k(ids, exact_ids)
      if curve[value] >= r.target_recall:
        break
    chosen = value  # the first reaching the target, else the largest tried

    def approx(q):
      return retrieval.index_top_k(index, q, r.k)

    rows.append(_row(
        "ann", n, d, _time_queries(approx, queries, r),
        _throughput(approx, queries, r.batch_size, r.max_seconds),
        index=r.index, build_s=build,
        index_mib=retrieval.index_bytes(index) / 2**20,
        search=f"{r.search_parameter}={chosen}" if r.search_parameter else "-",
        recall=curve[chosen],
        reached_target=curve[chosen] >= r.target_recall,
        recall_curve={str(v): c for v, c in curve.items()}))
  return rows


def _mlp_row(n, d, r, key):
  """NCF's MLP with embeddings of d per side, scoring all n items."""
  num_queries = max(r.latency_queries, r.mlp_batch_size)
  module = models.MLP(num_queries, n, d, (2 * d, d, max(d // 2, 1)))
  ids = jnp.zeros((1,), jnp.int32)
  model = retrieval.serving_model(jax.jit(module.init)(key, ids, ids))

  def catalog_for(batch):
    chunk = max(1, r.mlp_chunk_mib * 2**20 // (4 * batch * 2 * d))
    return retrieval.make_catalog(model.items, chunk)

  catalogs = {1: catalog_for(1), r.mlp_batch_size: catalog_for(
      r.mlp_batch_size)}

  def search(users):
    users = jnp.asarray(users)
    return jax.block_until_ready(retrieval.top_k(
        retrieval.select_users(model, users), catalogs[len(users)],
        model.tail, r.k))

  users = np.arange(num_queries)
  return _row("mlp", n, d, _time_queries(search, users, r),
              _throughput(search, users, r.mlp_batch_size, r.max_seconds))


def run(config, workdir, overwrite=False) -> dict:
  """Runs the benchmark of `config` into `workdir`; returns results.json."""
  serving_config.validate(config)
  r = config.retrieval
  workdir_lib.check_path(workdir)
  trained = (serving_config.trained_embeddings(r.embeddings_from)
             if r.embeddings_from else None)
  if trained is not None:
    checks.check(r.k <= len(trained[0]), "retrieval.k", r.k,
                 f"must be <= the run's {len(trained[0])} items")
    serving_config.check_index(r, [trained[0].shape[1]], len(trained[0]))
  else:
    serving_config.check_index(r, r.dims, min(r.nums_items))
  inputs = ([pathlib.Path(r.embeddings_from) / results.PARAMS]
            if r.embeddings_from else [])
  with workdir_lib.use(workdir, config.to_dict(), overwrite, inputs,
                       outputs=("retrieval.md", "retrieval.png")) as path:
    results.replace_metrics(path, "", [])  # rows are measured afresh
    rows = _run(r, path, trained)
    final = {"experiment": "retrieval", "device": str(jax.devices()[0]),
             "rows": rows}
    results.write_atomically(path / "retrieval.md",
                             lambda f: f.write(markdown_table(rows)))
    _plot(rows, path / "retrieval.png")
    results.write_json(path / results.RESULTS, final)
  return final


def _run(r, workdir, trained):
  rng = np.random.default_rng(r.seed)
  key = jax.random.key(r.seed)
  num_queries = max(r.latency_queries, r.recall_queries, r.batch_size)
  if trained is not None:
    cells = [(trained[0].shape[0], trained[0].shape[1])]
  else:
    cells = [(n, d) for n in r.nums_items for d in r.dims]
  rows = []
  for n, d in cells:
    if trained is not None:
      items, users = trained
      queries = users[rng.integers(0, len(users), num_queries)]
    else:
      items = rng.standard_normal((n, d), dtype=np.float32)
      queries = rng.standard_normal((num_queries, d), dtype=np.float32)
    cell = []
    if {"dot", "ann"} & set(r.methods):
      cell += _dot_rows(items, queries, r, n, d)
    if "mlp" in r.methods:
      cell.append(_mlp_row(n, d, r, jax.random.fold_in(key, len(rows))))
    for row in cell:
      results.append_metrics(workdir, row)
      logging.info("n=%d d=%d %s: p50 %.3f ms, p99 %.3f ms, %.0f queries/s%s",
                   n, d, row["method"], row["p50_ms"], row["p99_ms"],
                   row["queries_per_s"],
                   f", recall@{r.k} {row['recall']:.3f}" if "recall" in row
                   else "")
    rows += cell
  return rows


def markdown_table(rows) -> str:
  """One line per (n, d, method), with ratios against exact dot."""
  dot = {(x["n"], x["d"]): x for x in rows if x["method"] == "dot"}
  lines = ["| n | d | method | p50 ms | p99 ms | queries/s | x dot p50 | "
           "recall | build s | index MiB |", "|" + "---|" * 10]
  for x in rows:
    base = dot.get((x["n"], x["d"]))
    speedup = f"{base['p50_ms'] / x['p50_ms']:.2f}" if base else "-"
    recall = (f"{x['recall']:.3f}" + ("" if x["reached_target"] else " (!)")
              if "recall" in x else "-")
    # Only the faiss index has a build time and a size.
    build = f"{x['build_s']:.1f}" if "build_s" in x else "-"
    size = f"{x['index_mib']:.0f}" if "index_mib" in x else "-"
    lines.append(
        f"| {x['n']:,} | {x['d']} | {x['method']} | {x['p50_ms']:.3f} | "
        f"{x['p99_ms']:.3f} | {x['queries_per_s']:,.0f} | {speedup} | "
        f"{recall} | {build} | {size} |")
  return "\n".join(lines) + "\n"


def _plot(rows, path) -> None:
  """Log-log p50 latency against n, one panel per d, one line per method."""
  plt = plotting.pyplot(path)
  if plt is None:
    return
  dims = sorted({x["d"] for x in rows})
  fig, axes = plt.subplots(1, len(dims), figsize=(4 * len(dims), 3.6),
                           sharey=True, squeeze=False)
  for ax, d in zip(axes[0], dims):
    for method in serving_config.METHODS:
      points = sorted((x["n"], x["p50_ms"]) for x in rows
                      if x["d"] == d and x["method"] == method)
      if points:
        ax.plot(*zip(*points), marker="o", label=method)
      if method == "mlp" and len(points) > 1:  # a linear-growth guide
        (n0, t0), n1 = points[0], points[-1][0]
        ax.plot([n0, n1], [t0, t0 * n1 / n0], color="gray", lw=0.8, ls="--",
                label="∝ n")
    ax.set(xscale="log", yscale="log", xlabel="items n", title=f"d = {d}")
    ax.grid(True, which="both", alpha=0.3)
  axes[0][0].set_ylabel("p50 latency per query (ms)")
  axes[0][-1].legend()
  plotting.save(fig, path)
