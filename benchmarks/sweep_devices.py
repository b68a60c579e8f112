"""Tuning-sweep throughput against the number of devices the points shard over.

python benchmarks/sweep_devices.py                      # CPU: forced host devices 1, 2, 4
python benchmarks/sweep_devices.py --data_dir=/work/shared/data/ml-1m
python benchmarks/sweep_devices.py --devices=1,2,4,8 --no_force_host_devices  # GPUs/TPU

One shape of the App. A.2 sweep (MF, d, m; or --model, a learned similarity
with NCF's recipe) with --points points (learning rate x lambda pairs),
trained as tuning.py trains them: one jitted program whose point axis is
sharded over a 1-D mesh of n devices (train.make_train), the points padded
to a multiple of n as tuning.py pads them and a run pads its seeds
(distributed.padded_count: 9 points on 2 devices train as 10); the rate
counts the real points only.
Each device count runs in its own process: on a CPU with
XLA_FLAGS=--xla_force_host_platform_device_count=n (the devices then share
the same cores: this measures what sharding costs or gains on one machine);
on GPUs or TPUs the first n real devices. After one untimed call (compile and
warm-up), --epochs epochs (one call, as the sweep runs between evaluations)
are timed. A last row trains the points one program each on 1 device
(sweep.points_per_program=1, unvmapped), the other way to run a sweep on a
CPU. Printed: point-examples/s and the ratio against 1 device of the same
run; absolute rates are not comparable across runs.
"""

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

import cli  # benchmarks/ is on sys.path when this script runs

_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4"],
                             "device counts to compare.")
cli.whole_numbers("devices", 1)
_FORCE = flags.DEFINE_bool(
    "force_host_devices", True, "CPU: simulate n devices with "
    "--xla_force_host_platform_device_count (off: use the first n real ones).")
_POINTS = flags.DEFINE_integer("points", 8, "sweep points (lr x lambda).")
_MODEL = flags.DEFINE_enum(
    "model", "mf", ["mf", "gmf", "mlp", "neumf"], "mf: App. A.1's SGD; gmf, "
    "mlp, neumf: NCF's recipe (ncf_config.use_ncf_recipe).")
_OPTIMIZER = flags.DEFINE_enum(
    "optimizer", "", ["", "exact", "batched", "adam", "lazy_adam", "sgd"],
    "train.optimizer ('': the model's, batched or adam).")
_DIM = flags.DEFINE_integer("dim", None, "d (default: 64; NeuMF 63).")
_NUM_NEGATIVES = flags.DEFINE_integer(
    "num_negatives", None, "m (default: 8; NCF's recipe 4).")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "timed epochs (one call).")
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "NCF folder; '' = generated data of --num_users x "
    "--num_items.")
_DATA_NAME = flags.DEFINE_string("data_name", "ml-1m", "NCF file prefix.")
_NUM_USERS = flags.DEFINE_integer("num_users", 6040, "generated data: users.")
_NUM_ITEMS = flags.DEFINE_integer("num_items", 3706, "generated data: items.")
_ONE_AT_A_TIME = flags.DEFINE_bool(
    "one_at_a_time_baseline", True, "also time 1 device training the points "
    "one program each (--config.sweep.points_per_program=1), the CPU "
    "default's alternative.")
_CHILD = flags.DEFINE_integer("child", 0, "internal: time n devices, print "
                              "one JSON line.")
_CHILD_SINGLE = flags.DEFINE_bool("child_single", False, "internal.")


def _config(config):
  """The flags' model, optimizer, d and m on the tuning command's config."""
  from dot_vs_learned import ncf_config  # pylint: disable=g-import-not-at-top
  if _MODEL.value == "mf":
    config.model.dim, config.train.num_negatives = 64, 8
  else:
    ncf_config.use_ncf_recipe(config, _MODEL.value)
  for field, value in (("model.dim", _DIM.value),
                       ("train.num_negatives", _NUM_NEGATIVES.value),
                       ("train.optimizer", _OPTIMIZER.value or None)):
    if value is not None:
      section, name = field.split(".")
      config[section][name] = value
  ncf_config.validate(config)  # e.g. a learned model needs a gradient step
  return config


def _time_devices(num_devices, one_at_a_time=False) -> dict:
  """In this process: times the sweep program on the first n devices."""
  import jax  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import data as data_lib  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import datasets  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import distributed  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import train  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import tuning_config  # pylint: disable=g-import-not-at-top
  if _DATA_DIR.value:
    data = data_lib.load_ncf(_DATA_DIR.value, _DATA_NAME.value)
  else:
    data = datasets.generate_default(_NUM_USERS.value, _NUM_ITEMS.value)
  config = _config(tuning_config.default_config())
  devices = jax.devices()[:num_devices]
  if len(devices) < num_devices:
    raise ValueError(f"--devices: {num_devices} asked, {len(jax.devices())} "
                     "available")
  count = _POINTS.value
  # one_at_a_time: programs of one point each (sweep.points_per_program=1).
  if one_at_a_time:
    used, index = 1, np.arange(count)
  else:  # padded for the first n devices (real ones are not hidden from
    # the process as forced host devices are); the padding points repeat
    # the last one, as in tuning.py
    used, index = min(count, num_devices), distributed.padding_index(
        count, num_devices)
  total = len(index)
  mesh = (None if used == 1 else
          jax.sharding.Mesh(np.array(devices[:used]), ("points",)))
  init, run = train.make_train(config, data, mesh)
  lrs = np.geomspace(0.001, 0.01, count).astype(np.float32)[index]
  regs = np.tile(np.float32([0.0, 0.003]), count)[:count][index]
  keys = jax.random.split(jax.random.key(0), count)[index]
  parts = [slice(j, j + 1) for j in range(count)] if one_at_a_time else [
      slice(0, total)]
  warmup = seconds = 0.0
  hr, loss = [], []
  for part in parts:
    hps = train.Hparams(lrs[part], regs[part])
    start = time.perf_counter()
    states, metrics = jax.block_until_ready(
        run(init(keys[part]), _EPOCHS.value, hps))
    warmup += time.perf_counter() - start
    start = time.perf_counter()
    states, metrics = jax.block_until_ready(run(states, _EPOCHS.value, hps))
    seconds += time.perf_counter() - start
    hr += np.asarray(metrics["hr"]).tolist()[:count]
    loss += np.asarray(metrics["loss"]).tolist()[:count]
  if not np.all(np.isfinite(loss)):
    raise FloatingPointError(f"{num_devices} devices: loss {loss}")
  examples = (data.train_users.shape[0] * (1 + config.train.num_negatives) *
              _EPOCHS.value * count)
  return dict(devices=used, padded=total, one_at_a_time=one_at_a_time,
              kind=devices[0].device_kind, seconds=seconds, warmup=warmup,
              rate=examples / seconds, hr=hr)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CHILD.value:
    print(json.dumps(_time_devices(_CHILD.value, _CHILD_SINGLE.value)))
    return
  counts = [int(n) for n in _DEVICES.value]
  bad = [n for n in counts if n < 1]
  if bad or _POINTS.value < 1:
    raise app.UsageError(f"--devices {bad} and --points={_POINTS.value} must "
                         "be >= 1")
  from dot_vs_learned import checks  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import tuning_config  # pylint: disable=g-import-not-at-top
  try:
    t = _config(tuning_config.default_config())
  except checks.ConfigError as e:
    raise app.UsageError(str(e)) from None
  print(f"{os.cpu_count()} CPU cores ({len(os.sched_getaffinity(0))} usable); "
        f"{t.model.name} d={t.model.dim} m={t.train.num_negatives} "
        f"{t.train.optimizer}, {_POINTS.value} points, "
        f"{_EPOCHS.value} timed epochs; data "
        f"{_DATA_DIR.value or 'generated'}", flush=True)
  rows = []
  runs = [(n, False) for n in counts]
  if _ONE_AT_A_TIME.value:
    runs.append((1, True))
  for n, single in runs:
    env = dict(os.environ)
    if _FORCE.value:
      env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=(
          env.get("XLA_FLAGS", "") +
          f" --xla_force_host_platform_device_count={n}").strip())
    args = [a for a in sys.argv[1:] if not a.startswith("--child")]
    args += [f"--child={n}", f"--{'' if single else 'no'}child_single"]
    out = subprocess.run([sys.executable, __file__, *args],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode:
      sys.exit(f"{n} devices failed:\n{out.stderr[-3000:]}")
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"  {n} devices{', one point per program' if single else ''}: "
          f"{rows[-1]['rate']:,.0f} point-examples/s", flush=True)
  base = rows[0]
  same = all(np.allclose(r["hr"], base["hr"], atol=1e-6) for r in rows)
  print("\n| devices | points trained (padded) | points per device | kind | "
        "point-examples/s | timed s | warm-up s | "
        f"x {base['devices']} device(s) |\n|---|---|---|---|---|---|---|---|")
  for r in rows:
    per_device = ("1, a program each" if r["one_at_a_time"] else
                  r["padded"] // r["devices"])
    print(f"| {r['devices']} | {r['padded']} | {per_device} | {r['kind']} | "
          f"{r['rate']:,.0f} | "
          f"{r['seconds']:.1f} | {r['warmup']:.1f} | "
          f"{r['rate'] / base['rate']:.2f} |")
  print(f"\nHR@10 of every point equal across device counts: {same}")


if __name__ == "__main__":
  cli.run(main)
