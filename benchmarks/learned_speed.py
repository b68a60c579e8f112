"""Training speed of the learned similarities (GMF, MLP, NeuMF) against MF.

python benchmarks/learned_speed.py --data_dir=/work/shared/data/ml-1m
python benchmarks/learned_speed.py  # generated data with ML-1M's shape

Every model trains through the same jitted epoch (train.make_epoch) with the
same stream: d, m negatives per positive and the batch size from the flags
(defaults d=64, m=8, batch 2048: the settings of the RecBole 1.2.1 NeuMF
reference, quoted at about 95k examples/s on a 2-core CPU). Rows:
  mf-sgd   MF with biases, App. A.1 SGD (`batched`), the dot-product recipe;
  mf-adam  MF with biases, Adam on the minibatch loss (NCF's trainer);
  gmf, mlp, neumf  NCF's models, Adam (NCF's trainer). NeuMF needs d = 3k:
           it runs at the multiple of 3 nearest --dim (63 for 64);
  gmf-lazy, mlp-lazy, neumf-lazy  the same with lazy Adam (lazy_adam.py:
           only the embedding rows a batch uses move), with its speed-up over
           the dense row ("x dense"). Compare at two --num_items with the
           same positives to see the dense step's cost grow with the tables.
Ratios are against the two MF rows of the same run, so they compare on one
machine at one moment; absolute examples/s are not comparable across runs.
"""

import os

from absl import app
from absl import flags
import jax

from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import ncf_config
import cli
import timing  # benchmarks/ is on sys.path when this script runs

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "folder with {data_name}.train.rating etc.; '' = "
    "generated data with --num_users x --num_items.")
_DATA_NAME = flags.DEFINE_string("data_name", "ml-1m", "NCF file prefix.")
_NUM_USERS = flags.DEFINE_integer("num_users", 6040, "generated data: users.")
_NUM_ITEMS = flags.DEFINE_integer("num_items", 3706, "generated data: items.")
_MODELS = flags.DEFINE_list("models", ["mf-sgd", "mf-adam", "gmf", "mlp",
                                       "neumf"], "what to time.")
_DIM = flags.DEFINE_integer("dim", 64, "embedding dimension d per side.")
_NUM_NEGATIVES = flags.DEFINE_integer("num_negatives", 8, "m.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2048, "examples per step.")
_NUM_SEEDS = flags.DEFINE_integer(
    "num_seeds", 1, "seeds trained together, as the run driver does: one "
    "after another on CPU, vmapped on accelerators (train.POINT_LOOPS).")
_POINT_LOOP = flags.DEFINE_enum(
    "point_loop", "", ["", "vmap", "map"], "how --num_seeds seeds run; '': "
    "the platform's (train.default_point_loop).")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "timed epochs after warm-up, "
                               "at least; more until --min_seconds.")
_MIN_SECONDS = flags.DEFINE_float("min_seconds", 5.0, "least timed seconds.")
_REFERENCE = flags.DEFINE_float(
    "reference", 95_000.0, "quoted examples/s of RecBole 1.2.1 NeuMF "
    "(PyTorch, 2 CPU threads, d=64, m=8, batch 2048); 0 hides the column.")

ROWS = {"mf-sgd": ("mf", "batched"), "mf-adam": ("mf", "adam"),
        "gmf": ("gmf", "adam"), "mlp": ("mlp", "adam"),
        "neumf": ("neumf", "adam"), "gmf-lazy": ("gmf", "lazy_adam"),
        "mlp-lazy": ("mlp", "lazy_adam"), "neumf-lazy": ("neumf", "lazy_adam")}


def model_config(row, dim, num_negatives, batch_size):
  """The NCF config of one row: the model's recipe at the shared settings."""
  name, optimizer = ROWS[row]
  config = ncf_config.default_config()
  if name != "mf":
    ncf_config.use_ncf_recipe(config, name)
  config.model.dim = 3 * round(dim / 3) if name == "neumf" else dim
  config.train.update(optimizer=optimizer, num_negatives=num_negatives,
                      batch_size=batch_size)
  ncf_config.validate(config)
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = set(_MODELS.value) - set(ROWS)
  if unknown:
    raise app.UsageError(f"--models: unknown {sorted(unknown)}; "
                         f"choose from {sorted(ROWS)}")
  if _DATA_DIR.value:
    data = data_lib.load_ncf(_DATA_DIR.value, _DATA_NAME.value)
    source = f"{_DATA_NAME.value} from {_DATA_DIR.value}"
  else:
    data = datasets.generate_default(_NUM_USERS.value, _NUM_ITEMS.value)
    source = "generated (datasets.generate_default)"
  m, seeds = _NUM_NEGATIVES.value, _NUM_SEEDS.value
  per_epoch = data.train_users.shape[0] * (1 + m)
  print(f"jax {jax.__version__}; devices {jax.devices()}; {os.cpu_count()} "
        f"CPU cores ({len(os.sched_getaffinity(0))} usable)")
  print(f"data: {source}: {data.num_users} users, {data.num_items} items, "
        f"{data.train_users.shape[0]} positives, {per_epoch} examples/epoch; "
        f"d={_DIM.value} m={m} batch={_BATCH_SIZE.value} seeds={seeds} "
        f"({_POINT_LOOP.value or 'default'} loop)")
  spec = dict(seed=0, num_seeds=seeds, epochs=_EPOCHS.value,
              min_seconds=_MIN_SECONDS.value,
              point_loop=_POINT_LOOP.value or None)
  rates, lines = {}, []
  for row in _MODELS.value:
    config = model_config(row, _DIM.value, m, _BATCH_SIZE.value)
    r = timing.time_epochs(data, config, spec)
    rates[row] = r["examples"] / r["seconds"]
    lines.append((row, config.model.dim, r))
    print(f"  {row}: {rates[row]:,.0f} examples/s", flush=True)

  def ratio(row, base):
    return f"{rates[row] / rates[base]:.2f}" if base in rates else "-"

  header = ["model", "d", "examples/s", "per seed", "s/epoch", "warm-up s",
            "x mf-sgd", "x mf-adam", "x dense"]
  if _REFERENCE.value:
    header.append("x RecBole")
  print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
  for row, dim, r in lines:
    cells = [row, dim, f"{rates[row]:,.0f}", f"{rates[row] / seeds:,.0f}",
             f"{per_epoch * seeds / rates[row]:.1f}", f"{r['warmup']:.1f}",
             ratio(row, "mf-sgd"), ratio(row, "mf-adam"),
             ratio(row, row[:-len("-lazy")]) if row.endswith("-lazy") else "-"]
    if _REFERENCE.value:
      cells.append(f"{rates[row] / seeds / _REFERENCE.value:.2f}")
    print("| " + " | ".join(str(c) for c in cells) + " |")
  print("\nexamples/s: all seeds together; x RecBole: per seed, against the "
        f"quoted {_REFERENCE.value:,.0f} examples/s (not measured here).")


if __name__ == "__main__":
  cli.run(main)
