"""The §5 serving benchmark's config: defaults, validation, and the trained
embeddings that `retrieval.embeddings_from` names.

Every value out of range, and every unreadable run it names, raises
ConfigError naming the field, before the workdir is touched; check_index
tries the faiss index string and search parameter on an empty index.
"""

import pathlib
import re
import zipfile

import ml_collections
import numpy as np

from dot_vs_learned import checks
from dot_vs_learned import models
from dot_vs_learned import ncf_config
from dot_vs_learned import results
from dot_vs_learned import retrieval

METHODS = ("dot", "ann", "mlp")
MAX_SEED = ncf_config.MAX_SEED  # jax.random.key keeps 32 bits
# From this many items up, every code book of at most 2^16 centroids has a
# training vector for each (and the IVF lists are checked on their own).
PROBE_ITEMS = 1 << 16


def default_config():
  config = ml_collections.ConfigDict()
  config.experiment = "retrieval"  # which experiment main.py runs
  config.retrieval = ml_collections.ConfigDict(dict(
      nums_items=(10_000, 100_000, 1_000_000),  # catalogue sizes n
      dims=(32, 64, 128, 192),  # embedding dimensions d
      methods=METHODS,  # "dot" (exact), "ann" (faiss), "mlp" (scoring)
      k=10,  # items returned per query
      latency_queries=100,  # single-user queries timed per method and cell,
      max_seconds=20.0,  # unless this time runs out first (at least 5 run)
      batch_size=64,  # queries per call for queries/s (dot and ann)
      mlp_batch_size=8,  # the same for the MLP
      chunk_size=65_536,  # items per scan step of exact dot
      mlp_chunk_mib=64,  # the MLP's chunk holds at most this many hidden MiB
      index="HNSW32,Flat",  # faiss index_factory string
      ef_construction=64,  # HNSW build parameter
      search_parameter="efSearch",  # "nprobe" for IVF; "" for none (Flat)
      search_values=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096),  # tried
      target_recall=0.95,  # the smallest search value reaching it is timed
      recall_queries=200,  # queries of the recall@k estimate
      embeddings_from="",  # workdir of a finished MF run, "" = generated
      seed=0,  # seed of the generated embeddings and queries
  ))
  return config


def _whole_values(values, least) -> bool:
  return isinstance(values, (tuple, list)) and len(values) > 0 and all(
      checks.is_whole(v) and v >= least for v in values)


def _once(values) -> bool:
  """No value twice: a cell or method given twice would be measured twice
  and drawn on top of itself."""
  return len(set(values)) == len(values)


def validate(config) -> None:
  """Raises ConfigError naming the first config field out of range."""
  r, check = config.retrieval, checks.check
  check(_whole_values(r.nums_items, 1), "retrieval.nums_items",
        r.nums_items, "sizes must be whole numbers >= 1")
  check(_whole_values(r.dims, 2), "retrieval.dims", r.dims,
        "dimensions must be whole numbers >= 2 (the MLP has d/2 units)")
  check(len(r.methods) > 0 and set(r.methods) <= set(METHODS),
        "retrieval.methods", r.methods, f"must be a subset of {METHODS}")
  for field in ("k", "latency_queries", "batch_size", "mlp_batch_size",
                "chunk_size", "mlp_chunk_mib", "recall_queries",
                "ef_construction"):
    check(checks.is_whole(r[field]) and r[field] >= 1, f"retrieval.{field}",
          r[field], "must be a whole number >= 1")
  if not r.embeddings_from:
    check(r.k <= min(r.nums_items), "retrieval.k", r.k,
          f"must be <= the smallest catalogue, {min(r.nums_items)}")
  check(checks.is_whole(r.seed) and 0 <= r.seed <= MAX_SEED, "retrieval.seed",
        r.seed, f"must be a whole number in [0, {MAX_SEED}]")
  check(r.max_seconds > 0, "retrieval.max_seconds", r.max_seconds,
        "must be > 0")
  check(0 < r.target_recall <= 1, "retrieval.target_recall",
        r.target_recall, "must be in (0, 1]")
  check(isinstance(r.search_values, (tuple, list)) and
        len(r.search_values) > 0, "retrieval.search_values",
        r.search_values, "needs at least one value")
  check(all(checks.is_number(v) and v > 0 for v in r.search_values),
        "retrieval.search_values", r.search_values,
        "values must be finite numbers > 0")
  for field in ("nums_items", "dims", "methods", "search_values"):
    check(_once(r[field]), f"retrieval.{field}", r[field],
          "each value once (one is repeated)")
  if not r.embeddings_from:
    validate_sizes(r)


def cell_bytes(num_items, dim, r) -> tuple[int, int]:
  """Estimated (host, device) bytes of a generated cell, float32.

  Host: the generated items, the runtime (256 MiB) and, with "ann", the
  faiss index: vectors and graph, 512 + 4 d bytes an item (an HNSW32
  index of 10^6 items at d = 64 took 504 MiB, 528 bytes an item). Device:
  for exact dot the items and one copy of them; for the MLP its embedding
  tables, the first-layer products of the items (h1 = 2 d), one copy of
  the items and two chunks of hidden units. The methods run one after the
  other. Measured (maxrss growth on the 2-core CPU, d = 64, 0.5 and 2
  million items): exact dot 3.1 and the MLP 5.0 times the items' bytes,
  plus 46 and 138 MiB; this estimate says 3 and 5 times plus 256 MiB.
  """
  items = 4 * num_items * dim
  index = num_items * (512 + 4 * dim) if "ann" in r.methods else 0
  dot = 2 * items if {"dot", "ann"} & set(r.methods) else 0
  mlp = (4 * items + 2 * r.mlp_chunk_mib * 2**20 if "mlp" in r.methods
         else 0)
  return items + index + 2**28, max(dot, mlp)


def validate_sizes(r) -> None:
  """Refuses a grid whose largest cell needs more than 90% of the memory
  (ConfigError naming the fields)."""
  overflow = checks.memory_overflow(*cell_bytes(max(r.nums_items),
                                                max(r.dims), r))
  if overflow:
    need, of, limit = overflow
    checks.check(
        False, "retrieval.nums_items", r.nums_items,
        f"the cell n={max(r.nums_items)}, d={max(r.dims)} (retrieval.dims) "
        f"with methods {tuple(r.methods)} needs about {need / 2**30:.1f} "
        f"GiB of {of} memory, more than 90% of its {limit / 2**30:.1f} GiB")


def _reason(error) -> str:
  """An error's message on one line; faiss's without its 'Error in
  <function> at <file>:<line>: '."""
  text = " ".join(str(error).split())
  return re.sub(r"^Error in .*? at \S+:\d+: (Error: '.*?' failed: )?", "",
                text)


def check_index(r, dims, num_items) -> None:
  """With "ann": faiss is installed, builds r.index for each d in `dims`,
  can train it on the smallest catalogue, `num_items`, and takes
  r.search_parameter at every search value (ConfigError)."""
  if "ann" not in r.methods:
    return
  check = checks.check
  for dim in sorted(set(dims)):
    try:
      index = retrieval.empty_index(dim, r.index)
    except ImportError:
      check(False, "retrieval.methods", r.methods, "'ann' needs faiss, not "
            "installed: pip install 'dot_vs_learned[ann]' (faiss-cpu), or "
            "leave 'ann' out")
    except RuntimeError as e:
      check(False, "retrieval.index", r.index, f"faiss cannot build it at "
            f"d={dim}: {_reason(e)}")
    lists = retrieval.index_lists(index)
    check(lists <= min(num_items, retrieval.MAX_TRAINING), "retrieval.index",
          r.index, f"its {lists} IVF lists need as many training items; "
          f"the smallest catalogue has {num_items}")
    _check_training(r, index, dim, num_items)
    for value in r.search_values if r.search_parameter else ():
      try:
        retrieval.set_search_parameter(index, r.search_parameter, value)
      except RuntimeError:
        check(False, "retrieval.search_parameter", r.search_parameter,
              f"faiss cannot set it to {value!r} on a {r.index!r} index "
              "(efSearch for HNSW, nprobe for IVF, '' for none)")


def _check_training(r, index, dim, num_items) -> None:
  """Trains the empty `index` on `num_items` random vectors where it could
  fail: each code book of a product quantizer needs as many training
  vectors as it has centroids (2^nbits, at most 2^16). That is one more
  training at the smallest catalogue, for indexes that train, under
  PROBE_ITEMS items."""
  if index.is_trained or num_items >= PROBE_ITEMS:
    return
  vectors = np.random.default_rng(0).standard_normal((num_items, dim))
  try:
    index.train(vectors.astype(np.float32))
  except RuntimeError as e:
    checks.check(False, "retrieval.index", r.index, f"faiss cannot train it "
                 f"at d={dim} on the smallest catalogue's {num_items} "
                 f"items: {_reason(e)}")


def trained_embeddings(workdir):
  """Item vectors and user queries of a finished MF run (its first seed);
  ConfigError naming retrieval.embeddings_from if it holds none."""
  path = pathlib.Path(workdir)

  def refuse_unless(ok, requirement):
    checks.check(ok, "retrieval.embeddings_from", str(workdir), requirement)

  refuse_unless(path.is_dir(), "no such directory" if not path.exists()
                else "not a directory")
  refuse_unless(not (path / results.FAILURE).exists(),
                f"holds a failed run ({results.FAILURE}); the benchmark "
                "needs a finished 'mf' run")
  refuse_unless((path / results.RESULTS).exists(), "holds no finished run "
                f"(no {results.RESULTS}); train one with python -m "
                "dot_vs_learned.main")
  try:
    config = results.read_json_object(path / results.CONFIG)
  except results.JSONFileError as e:
    refuse_unless(False, f"its {results.CONFIG}: {e}")
  model = config.get("model")
  name = model.get("name") if isinstance(model, dict) else None
  refuse_unless(name is not None, f"its {results.CONFIG} names no model "
                "(model.name)")
  refuse_unless(name == "mf", f"holds a {name!r} run; the dot-product "
                "benchmark needs an 'mf' run")
  params = path / results.PARAMS
  refuse_unless(params.is_file(), f"holds no {results.PARAMS}")
  refuse_unless(zipfile.is_zipfile(params), f"cannot read {results.PARAMS}: "
                "not a zip archive (truncated?)")
  try:
    with np.load(params) as arrays:
      flat = {k: arrays[k] for k in ("mf/user", "mf/item", "mf/bias")
              if k in arrays.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    refuse_unless(False, f"cannot read {results.PARAMS}: {_reason(e)}")
  user, item, bias = (flat.get(k) for k in ("mf/user", "mf/item", "mf/bias"))
  # A member that is no .npy array loads as bytes.
  refuse_unless(
      all(isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)
          for a in (user, item, bias)) and user.ndim == item.ndim == 3 and
      bias.ndim == 1 and user.shape[2] == item.shape[2] and
      min(user.shape + item.shape) > 0,
      f"its {results.PARAMS} holds no MF tables (mf/user [seeds, users, d], "
      "mf/item [seeds, items, d], mf/bias [seeds], floats)")
  refuse_unless(all(np.isfinite(a[0]).all() for a in (user, item, bias)),
                f"its {results.PARAMS} holds non-finite values (seed 0): "
                "a diverged run")
  model = retrieval.serving_model(models.MFParams(user[0], item[0], bias[0]))
  return np.asarray(model.items.dot), np.asarray(model.queries.dot)
