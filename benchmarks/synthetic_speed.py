"""Speed of the §4 synthetic grid: generator, vmapped trainer, full-grid time.

python benchmarks/synthetic_speed.py                 # the measurements below
python benchmarks/synthetic_speed.py --estimate=False

1. Data generation of one seed of a cell (M users = items, 100 M pairs),
   against the quoted ~50 s of the paper's Python-loop generator at M = 4000.
2. Training samples/s at M = 4000, multiplier 1, batch 256: all seeds in one
   vmapped program against the same epoch program run seed by seed, each
   after a warm-up epoch; and against the quoted Keras 3 (JAX backend) rates
   of the paper's code, one seed at a time on a 2-core CPU: 570k/s at d = 16,
   165k/s at d = 64.
3. With --estimate: samples/s of one vmapped epoch for every (d, multiplier)
   of configs/synthetic.py (on 20 M pairs of M = 4000, so it stays short),
   and from them the full grid's time on this device.
"""

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from dot_vs_learned import synthetic
from dot_vs_learned import synthetic_data
import cli  # benchmarks/ is on sys.path when this script runs

_DIMS = flags.DEFINE_list("dims", ["16", "64"], "d of parts 1 and 2.")
cli.whole_numbers("dims", 1)
_NUM_USERS = flags.DEFINE_integer("num_users", 4000, "M of parts 1 and 2.")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "timed epochs after warm-up.")
_ESTIMATE = flags.DEFINE_bool("estimate", True, "part 3.")
QUOTED = {16: 570_000, 64: 165_000}  # Keras 3 on JAX, per seed, quoted


def _time_epochs(epoch, states, data, epochs):
  states, _ = jax.block_until_ready(epoch(states, data))  # warm-up
  start = time.perf_counter()
  for _ in range(epochs):
    states, loss = jax.block_until_ready(epoch(states, data))
  if not np.all(np.isfinite(np.asarray(loss))):
    raise FloatingPointError(f"loss {loss}")
  return time.perf_counter() - start


def trainer_rates(num_users, dim, multiplier, c, epochs, sequential=True):
  """(vmapped samples/s of all seeds, seed-by-seed samples/s or None)."""
  data = jax.device_put(synthetic_data.stack_seeds(num_users, dim, c))
  num_train = data.train.shape[1]
  init, epoch, _ = synthetic.make_cell_programs(dim, multiplier, num_train, c)
  keys = jax.random.split(jax.random.key(0), c.num_seeds)
  samples = c.num_seeds * num_train * epochs
  vmapped = _time_epochs(jax.jit(jax.vmap(epoch)),
                         jax.jit(jax.vmap(init))(keys), data,
                         epochs)
  if not sequential:
    return samples / vmapped, None
  one_epoch = jax.jit(epoch)
  seconds = 0.0
  for s in range(c.num_seeds):
    seconds += _time_epochs(one_epoch, init(keys[s]),
                            jax.tree.map(lambda x, s=s: x[s], data), epochs)
  return samples / vmapped, samples / seconds


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = synthetic.default_config()
  c = config.synthetic
  m = _NUM_USERS.value
  print(f"jax {jax.__version__}; devices {jax.devices()}; {os.cpu_count()} "
        f"CPU cores ({len(os.sched_getaffinity(0))} usable); M={m}, "
        f"{c.num_seeds} seeds, batch {c.batch_size}")
  print("\n| d | generate one seed s | x quoted 50 s |\n|---|---|---|")
  for dim in map(int, _DIMS.value):
    start = time.perf_counter()
    synthetic_data.generate(m, dim, 0, c)
    seconds = time.perf_counter() - start
    print(f"| {dim} | {seconds:.3f} | {50 / seconds:.0f} |", flush=True)
  print("\n| d | vmapped samples/s | seed by seed samples/s | vmapped / seed "
        "by seed | x quoted Keras |\n" + "|---" * 5 + "|")
  for dim in map(int, _DIMS.value):
    vmapped, sequential = trainer_rates(m, dim, 1, c, _EPOCHS.value)
    quoted = f"{vmapped / QUOTED[dim]:.2f}" if dim in QUOTED else "-"
    print(f"| {dim} | {vmapped:,.0f} | {sequential:,.0f} | "
          f"{vmapped / sequential:.2f} | {quoted} |", flush=True)
  print("samples/s count the samples of every seed: a cell of 5 seeds takes "
        "5 x samples / rate; Keras trains one seed at a time at the quoted "
        "rate, so 'x quoted Keras' is how much sooner a seed is done.")
  if not _ESTIMATE.value:
    return
  short = synthetic.default_config().synthetic
  short.pairs_per_user = 20
  rates = {}
  print("\n| d | multiplier | hidden | vmapped samples/s |\n|---|---|---|---|")
  for mult in c.multipliers:
    for dim in c.dims:
      rates[(dim, mult)] = trainer_rates(m, dim, mult, short, 1,
                                         sequential=False)[0]
      print(f"| {dim} | {mult} | {list(synthetic.hidden_sizes(dim, mult))} | "
            f"{rates[(dim, mult)]:,.0f} |", flush=True)
  seconds = synthetic.full_grid_estimate(config, rates)
  print(f"\nfull grid of configs/synthetic.py ({len(c.dims)} d x "
        f"{len(c.nums_users)} M x {len(c.multipliers)} widths x "
        f"{c.num_seeds} seeds x {c.epochs} epochs) on {jax.devices()[0]}: "
        f"{seconds / 3600:.1f} h of training at these rates")


if __name__ == "__main__":
  cli.run(main)
