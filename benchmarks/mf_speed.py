"""Training speed and peak memory of MF: numpy per-example SGD vs JAX.

python benchmarks/mf_speed.py --data_dir=/work/shared/data/ml-1m --dims=16,64,192
python benchmarks/mf_speed.py --dims=16 --numpy_examples=20000  # generated data
python benchmarks/mf_speed.py --data_dir=/work/shared/data/gowalla --dims=64  # item lists

For each d it measures training examples/s of (a) benchmarks/numpy_sgd.py, a
Python loop over the examples as in the paper's reference code, on a prefix of
one epoch's shuffled stream (building the stream is not timed), and (b, c) the
`exact` and `batched` optimizers of dot_vs_learned.train over whole epochs
after a warm-up epoch that includes compilation, and (d) "floor": the same
epochs with `batched`'s step cut down to its row gathers and scatter-adds,
the least any XLA formulation of sparse SGD does. Each measurement runs in its
own spawned process, which reports its peak resident memory (VmHWM): the
interpreter, imports and dataset ("setup") plus the method's own work. JAX is
imported only where it is used, so the numpy process does not pay for it.

Before timing, the numpy loop is checked against sgd.exact_step: on a
window where each example shares a row with the one before (one example per
wave) they must agree to float32 rounding. On other windows they differ only
through the global bias b, which `exact` moves once per wave (train.py), so
the printed differences on b, and through it on the rows, are not zero.
"""

import concurrent.futures
import multiprocessing
import os
import pathlib
import resource
import sys
import time

from absl import app
from absl import flags
import numpy as np

from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import item_lists
from dot_vs_learned import ncf_config
import cli
import numpy_sgd  # benchmarks/ is on sys.path when this script runs
import timing

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "folder with {data_name}.train.rating etc., or with "
    "train.txt and test.txt (item lists); '' = the embedded generated data "
    "(datasets.generate_default).")
_DATA_NAME = flags.DEFINE_string("data_name", "ml-1m", "NCF file prefix.")
_DIMS = flags.DEFINE_list("dims", ["16", "64", "192"],
                          "embedding dimensions d (bias included, Eq. 2).")
cli.whole_numbers("dims", 2)
_METHODS = flags.DEFINE_list(
    "methods", ["numpy", "exact", "batched", "floor"],
    "what to time; floor: `batched`'s row gathers and scatter-adds alone.")
_NUMPY_EXAMPLES = flags.DEFINE_integer(
    "numpy_examples", 200_000, "examples of the stream the numpy loop runs.")
_EPOCHS = flags.DEFINE_integer(
    "epochs", 1, "timed JAX epochs after warm-up, at least; more are run "
    "until --min_seconds have passed (small data).")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 2.0,
                                  "least time of a JAX measurement.")
_NUM_SEEDS = flags.DEFINE_integer(
    "num_seeds", 1, "if > 1, also time the epoch of this many seeds on one "
    "device, vmapped and mapped (train.POINT_LOOPS).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", None, "examples per `batched` step; default: the config's.")
_WINDOW = flags.DEFINE_integer(
    "window", None, "examples per `exact` window; default: the config's.")
_SEED = flags.DEFINE_integer("seed", 0, "seed of parameters and streams.")


def _peak_mib() -> float:
  """Peak resident memory of this process, in MiB.

  On Linux, ru_maxrss survives fork + exec: a child started by a parent that
  was already large would report the parent's peak. VmHWM, the high-water
  mark of the process's own address space, does not.
  """
  try:
    with open("/proc/self/status") as f:
      kib = next(int(line.split()[1]) for line in f
                 if line.startswith("VmHWM:"))
  except (OSError, StopIteration):
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
  return kib / 1024


def _load(spec):
  """NCF files, an item-list folder (train.txt: Gowalla's), or generated."""
  if spec["data_dir"]:
    if (pathlib.Path(spec["data_dir"]) / item_lists.FILES[0]).exists():
      return item_lists.load_lists(spec["data_dir"])
    return data_lib.load_ncf(spec["data_dir"], spec["data_name"])
  return datasets.generate_default()


def _init_numpy(rng, num_rows, dim, stddev) -> np.ndarray:
  """Factors ~ N(0, stddev^2) and zero biases, as models.init_mf."""
  table = (stddev * rng.standard_normal((num_rows, dim))).astype(np.float32)
  table[:, 0] = 0.0
  return table


def _time_numpy(data, spec) -> dict:
  """Times numpy_sgd on the first `numpy_examples` of an epoch's stream."""
  rng = np.random.default_rng(spec["seed"])
  stream = numpy_sgd.make_examples(data.train_users, data.train_items,
                                   data.num_items, spec["num_negatives"], rng)
  count = min(spec["numpy_examples"], stream[0].shape[0])
  user = _init_numpy(rng, data.num_users, spec["dim"], spec["init_stddev"])
  item = _init_numpy(rng, data.num_items, spec["dim"], spec["init_stddev"])
  start = time.perf_counter()
  numpy_sgd.sgd_epoch(user, item, 0.0, *(a[:count] for a in stream),
                      spec["learning_rate"], spec["reg"])
  return {"examples": count, "seconds": time.perf_counter() - start}


def _floor_step(params, batch, hp):
  """The least work of a sparse SGD step: gather the batch's rows of both
  tables and scatter-add an update made from them (no scores, no gradients).

  Timed in place of sgd.train_step ("floor"), it bounds what any XLA
  formulation of `batched` can reach on the device.
  """
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import models  # pylint: disable=g-import-not-at-top
  decay = -hp.learning_rate * hp.reg
  user = params.user.at[batch.users].add(decay * params.user[batch.users])
  item = params.item.at[batch.items].add(decay * params.item[batch.items])
  return models.MFParams(user, item, params.bias), jnp.sum(batch.weights)


def _config(spec):
  """The NCF config of the measurement: App. A.2 values, flags applied."""
  config = ncf_config.default_config()
  config.model.dim = spec["dim"]
  config.train.optimizer = ("batched" if spec["method"] == "floor" else
                            spec["method"])
  for field in ("batch_size", "window", "learning_rate", "reg",
                "num_negatives", "init_stddev"):
    config.train[field] = spec[field]
  return config


def measure(spec) -> dict:
  """Runs one measurement; meant for a fresh process (peak memory is its)."""
  if spec["method"] != "numpy":
    import jax  # pylint: disable=g-import-not-at-top
    jax.devices()  # so that "setup" counts the started JAX runtime too
  data = _load(spec)
  setup = _peak_mib()
  if spec["method"] == "numpy":
    timed = _time_numpy(data, spec)
  else:
    if spec["method"] == "floor":
      from dot_vs_learned import sgd  # pylint: disable=g-import-not-at-top
      sgd.train_step = _floor_step  # this child process times nothing else
    timed = timing.time_epochs(data, _config(spec), spec)
  return dict(timed, setup_mib=setup, peak_mib=_peak_mib())


def _measure_in_child(spec) -> dict:
  # A killed child (out of memory) raises BrokenProcessPool instead of hanging.
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
    return pool.submit(measure, spec).result()


def verify_exact_step(data, spec) -> None:
  """Prints max |numpy - sgd.exact_step| on windows of three kinds."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import models  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import sgd  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import stream as stream_lib  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import train as train_lib  # pylint: disable=g-import-not-at-top
  step = jax.jit(sgd.exact_step)

  def compare(what, user, item, windows, eta, reg):
    """Runs the windows through both; returns max abs difference of rows, b."""
    np_user, np_item, np_bias = user.copy(), item.copy(), np.float32(0.0)
    params = models.MFParams(jnp.asarray(user), jnp.asarray(item),
                             jnp.float32(0.0))
    hp = train_lib.Hparams(jnp.float32(eta), jnp.float32(reg))
    for users, items, labels in windows:
      np_bias = numpy_sgd.sgd_epoch(np_user, np_item, np_bias, users, items,
                                    labels, eta, reg)
      batch = stream_lib.Batch(jnp.asarray(users, jnp.int32),
                          jnp.asarray(items, jnp.int32),
                          jnp.asarray(labels, jnp.float32),
                          jnp.ones(len(users), jnp.float32))
      params, _ = step(params, batch, hp)
    rows = max(np.abs(np.asarray(params.user) - np_user).max(),
               np.abs(np.asarray(params.item) - np_item).max())
    bias = abs(float(params.bias) - float(np_bias))
    print(f"verify: {what}, eta={eta}: max |numpy - exact_step| = {rows:.1e} "
          f"on the rows, {bias:.1e} on b (b = {float(np_bias):.4f})")
    return max(rows, bias)

  rng = np.random.default_rng(spec["seed"])
  user = rng.normal(0, 0.3, (8, 5)).astype(np.float32)
  item = rng.normal(0, 0.3, (8, 5)).astype(np.float32)
  labels = rng.integers(0, 2, 8).astype(np.float32)
  # Each example shares its user or its item with the one before, so every
  # wave holds one example and exact_step must equal the loop, b included.
  chain = (np.array([0, 0, 1, 1, 2, 2, 0, 0]),
           np.array([0, 1, 1, 2, 2, 3, 3, 0]), labels)
  if not compare("chained window (one example per wave)", user, item,
                 [chain], 0.1, 0.05) < 1e-5:
    raise AssertionError("numpy_sgd and sgd.exact_step disagree")
  # One wave of 8 examples on distinct rows: b moves once per wave, not once
  # per example (train.py's docstring), and the scores see the older b.
  disjoint = (np.arange(8), rng.permutation(8), labels)
  compare("disjoint window (one wave)", user, item, [disjoint], 0.1, 0.05)
  # The benchmark's own stream and hyperparameters, from the start of training.
  w = spec["window"]
  stream = numpy_sgd.make_examples(data.train_users, data.train_items,
                                   data.num_items, spec["num_negatives"], rng)
  windows = [tuple(a[k * w:(k + 1) * w] for a in stream) for k in range(16)]
  compare(f"first 16 windows of {w} of an epoch, d={spec['dim']}",
          _init_numpy(rng, data.num_users, spec["dim"], spec["init_stddev"]),
          _init_numpy(rng, data.num_items, spec["dim"], spec["init_stddev"]),
          windows, spec["learning_rate"], spec["reg"])


def _row(cells, widths) -> str:
  return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top
  train_config = ncf_config.default_config().train
  base = dict(
      data_dir=_DATA_DIR.value, data_name=_DATA_NAME.value,
      numpy_examples=_NUMPY_EXAMPLES.value, epochs=_EPOCHS.value,
      min_seconds=_MIN_SECONDS.value,
      seed=_SEED.value, num_seeds=1,
      batch_size=_BATCH_SIZE.value or train_config.batch_size,
      window=_WINDOW.value or train_config.window,
      learning_rate=train_config.learning_rate, reg=train_config.reg,
      num_negatives=train_config.num_negatives,
      init_stddev=train_config.init_stddev)
  data = _load(base)
  per_epoch = data.train_users.shape[0] * (1 + base["num_negatives"])
  source = (f"{base['data_name']} from {base['data_dir']}" if base["data_dir"]
            else "embedded generated data (datasets.generate_default())")
  print(f"jax {jax.__version__}; devices {jax.devices()}; "
        f"{os.cpu_count()} CPU cores ({len(os.sched_getaffinity(0))} usable)")
  print(f"data: {source}: {data.num_users} users, {data.num_items} items, "
        f"{data.train_users.shape[0]} positives, {per_epoch} examples/epoch "
        f"(m={base['num_negatives']})")
  print(f"eta={base['learning_rate']} lambda={base['reg']} batch_size="
        f"{base['batch_size']} window={base['window']} numpy_examples="
        f"{base['numpy_examples']} timed JAX epochs>={base['epochs']} and "
        f">={base['min_seconds']} s")
  unknown = set(_METHODS.value) - {"numpy", "exact", "batched", "floor"}
  if unknown:
    raise app.UsageError(f"--methods: unknown {sorted(unknown)}")
  dims = [int(d) for d in _DIMS.value]
  verify_exact_step(data, dict(base, dim=dims[0]))

  runs = [(m, 1, "-") for m in _METHODS.value]
  if _NUM_SEEDS.value > 1:
    runs += [(m, _NUM_SEEDS.value, loop) for m in _METHODS.value
             if m != "numpy" for loop in ("vmap", "map")]
  header = ("d", "method", "seeds", "examples/s", "per seed", "x numpy",
            "s/epoch", "warm-up s", "peak MiB", "setup MiB", "device MiB")
  widths = (4, 8, 10, 11, 10, 8, 8, 9, 9, 9, 10)
  rows = []
  for dim in dims:
    baseline = None
    for method, seeds, loop in runs:
      spec = dict(base, dim=dim, method=method, num_seeds=seeds,
                  point_loop=None if loop == "-" else loop)
      r = _measure_in_child(spec)
      rate = r["examples"] / r["seconds"]
      baseline = rate if method == "numpy" else baseline
      ratio = f"{rate / baseline:.1f}" if baseline else "-"
      rows.append(_row((
          dim, method, seeds if seeds == 1 else f"{seeds} {loop}",
          f"{rate:,.0f}", f"{rate / seeds:,.0f}", ratio,
          f"{per_epoch * seeds / rate:.1f}",
          f"{r['warmup']:.1f}" if "warmup" in r else "-",
          f"{r['peak_mib']:.0f}", f"{r['setup_mib']:.0f}",
          f"{r.get('device_mib', float('nan')):.0f}"), widths))
      print(rows[-1], file=sys.stderr, flush=True)  # progress
  print("\nexamples/s: all seeds together; s/epoch: one epoch of all seeds;"
        " seeds 'n vmap' / 'n map': n seeds vmapped / one after another;"
        " numpy: timed on a prefix of the stream, stream building excluded;"
        " peak/setup MiB: host peak RSS (VmHWM) of the measuring process, at"
        " the end / before the method's work (imports, data); device MiB:"
        " accelerator peak (nan on CPU).")
  print(_row(header, widths))
  print("\n".join(rows))


if __name__ == "__main__":
  cli.run(main)
