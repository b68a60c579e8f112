"""iALS epoch time against the `implicit` library's ALS, and EASE^R's fit.

python benchmarks/ials_speed.py --data_dir=/work/shared/data/ml-1m
python benchmarks/ials_speed.py --data_dir=... --quality  # + HR/NDCG@10

For each d: one epoch of dot_vs_learned.ials (users then items, every row
solved exactly by Cholesky, or by --solver=cg with --cg_steps steps of
conjugate gradients from the current factors) against one iteration of
implicit.cpu.als.AlternatingLeastSquares on the same pairs with the same
number of factors, in the same process, alternating (`--rounds` each), after
a warm-up (our compile; implicit's first iteration). implicit runs its
default solver (3 conjugate-gradient steps per row, warm-started: not an
exact solve) and, with --implicit_exact, its Cholesky solver (exact, like
ours). implicit gets `--threads` OpenMP threads (default: the machine's
cores) and its BLAS pinned to 1 thread, as it recommends; XLA uses every
core (on the 2-core VM this was written on, process CPU time equalled wall
time even for a 2-thread matmul: both ran as if on one core). implicit's
objective is not ours (confidence 1 + 1/alpha0 on observed pairs, target 1,
a plain L2 of lambda alpha0 |I|): the comparison is of time, not of models.
`implicit` is an optional benchmark dependency (pip install implicit).

EASE^R: G = X^T X and B for --ease_reg, timed after a warm-up; --quality
adds the NCF sampled HR@10/NDCG@10 of iALS after each of --quality_epochs
epochs at each d, and of EASE^R for each lambda of --ease_grid (chosen on
the test split here, so a sanity check, not a tuned result).
"""

import os
import statistics
import time

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import ease
from dot_vs_learned import evaluate
from dot_vs_learned import ials
from dot_vs_learned import ials_solve
import cli  # benchmarks/ is on sys.path when this script runs

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "folder with {data_name}.train.rating etc.; '' = the "
    "generated default data (datasets.generate_default).")
_DATA_NAME = flags.DEFINE_string("data_name", "ml-1m", "NCF file prefix.")
_DIMS = flags.DEFINE_list("dims", ["64", "192"], "factors d (no bias).")
cli.whole_numbers("dims", 1)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "timed epochs of each method.")
_REG = flags.DEFINE_float("reg", ials.ML1M["reg"], "iALS lambda.")
_ALPHA0 = flags.DEFINE_float("alpha0", ials.ML1M["alpha0"], "iALS alpha0.")
_SOLVER = flags.DEFINE_enum("solver", "cholesky", list(ials_solve.SOLVERS),
                            "our row solver.")
_CG_STEPS = flags.DEFINE_integer("cg_steps", 3, "--solver=cg: steps a row.")
_CHUNK_PAIRS = flags.DEFINE_integer(
    "chunk_pairs", 0, "padded pairs per chunk of rows (0: the solver's "
    "default, ials_solve.CHUNK_PAIRS).")
_THREADS = flags.DEFINE_integer("threads", os.cpu_count(),
                                "implicit's num_threads.")
_IMPLICIT = flags.DEFINE_bool("implicit", True, "time implicit's ALS.")
_IMPLICIT_EXACT = flags.DEFINE_bool(
    "implicit_exact", True, "also time implicit's Cholesky solver (slow).")
_EASE_REG = flags.DEFINE_float("ease_reg", 500.0, "EASE^R lambda to time.")
_QUALITY = flags.DEFINE_bool("quality", False, "also train and evaluate.")
_QUALITY_EPOCHS = flags.DEFINE_integer("quality_epochs", 16,
                                       "iALS epochs of --quality.")
_EASE_GRID = flags.DEFINE_list(
    "ease_grid", ["100", "200", "300", "500", "1000", "2000", "3000"],
    "EASE^R lambdas of --quality.")


def _seconds(fn):
  """Wall seconds of fn() (its result blocked on)."""
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


class _Implicit:
  """implicit's ALS on our pairs, one timed iteration per `step`."""

  def __init__(self, data, dim, exact):
    import scipy.sparse  # pylint: disable=g-import-not-at-top
    import threadpoolctl  # pylint: disable=g-import-not-at-top
    from implicit.cpu import als  # pylint: disable=g-import-not-at-top
    confidence = np.full(len(data.train_users), 1 + 1 / _ALPHA0.value,
                         np.float32)
    self.matrix = scipy.sparse.csr_matrix(
        (confidence, (data.train_users, data.train_items)),
        shape=(data.num_users, data.num_items))
    self.limits = threadpoolctl.threadpool_limits
    with self.limits(1, "blas"):  # also silences implicit's check of it
      self.model = als.AlternatingLeastSquares(
          factors=dim, regularization=_REG.value * _ALPHA0.value *
          data.num_items, iterations=1, use_cg=not exact,
          num_threads=_THREADS.value, random_state=0)
    self.times = []

  def step(self) -> float:
    with self.limits(1, "blas"):
      self.model.fit(self.matrix, show_progress=False,
                     callback=lambda _, seconds, __: self.times.append(
                         seconds))
    return self.times[-1]


def _ials(data, dim):
  model = ials.make_ials(data.num_users, data.num_items, data.train_users,
                         data.train_items, dim, _REG.value, _ALPHA0.value,
                         solver=_SOLVER.value, cg_steps=_CG_STEPS.value,
                         chunk_pairs=_CHUNK_PAIRS.value or None)
  epoch = jax.jit(model.epoch, donate_argnums=0)
  return model, epoch


def _speed(data, dim) -> dict:
  """Seconds per epoch (medians) of ours and implicit's, alternating."""
  model, epoch = _ials(data, dim)
  box = [model.init(jax.random.key(0))]

  def ours():
    box[0], loss = epoch(box[0], model.data, model.hparams)
    return loss

  out = {"compile+first": _seconds(ours)}
  rivals = {}
  if _IMPLICIT.value:
    rivals["implicit cg"] = _Implicit(data, dim, exact=False)
    if _IMPLICIT_EXACT.value:
      rivals["implicit cholesky"] = _Implicit(data, dim, exact=True)
  for rival in rivals.values():
    rival.step()  # warm-up: allocations, first touch
  times = {"ours": [], **{name: [] for name in rivals}}
  for _ in range(_ROUNDS.value):
    times["ours"].append(_seconds(ours))
    for name, rival in rivals.items():
      times[name].append(rival.step())
  out.update({name: statistics.median(t) for name, t in times.items()})
  return out


def _metrics(score, params, data, mask) -> tuple[float, float]:
  m = evaluate.sampled_metrics(score, params, jnp.asarray(data.test_items),
                               jnp.asarray(data.test_negatives), mask, 10)
  return float(m["hr"]), float(m["ndcg"])


def _ials_quality(data, dim, mask) -> None:
  model, epoch = _ials(data, dim)
  state = model.init(jax.random.key(0))
  for e in range(1, _QUALITY_EPOCHS.value + 1):
    state, loss = epoch(state, model.data, model.hparams)
    hr, ndcg = _metrics(ials.score, state.params, data, mask)
    print(f"  iALS d={dim} epoch {e:2d}: loss {float(loss):.1f} "
          f"HR@10 {hr:.4f} NDCG@10 {ndcg:.4f}", flush=True)


def _ease(data, mask) -> None:
  args = (data.train_users, data.train_items, data.num_users, data.num_items)
  jax.block_until_ready(ease.fit(ease.gram(*args), _EASE_REG.value))  # warm
  gram_seconds = _seconds(lambda: ease.gram(*args))
  g = ease.gram(*args)
  fit_seconds = _seconds(lambda: ease.fit(g, _EASE_REG.value))
  print(f"EASE^R I={data.num_items}: G = X^T X {gram_seconds:.2f} s, "
        f"B (lambda {_EASE_REG.value:g}) {fit_seconds:.2f} s", flush=True)
  if _QUALITY.value:
    regs = jnp.asarray([float(r) for r in _EASE_GRID.value])
    history = jnp.asarray(ease.history_matrix(*args))
    m = ease.grid_metrics(ease.gram(*args), regs, history,
                          jnp.asarray(data.test_items),
                          jnp.asarray(data.test_negatives), mask, k=10)
    for r, hr, ndcg in zip(_EASE_GRID.value, m["hr"], m["ndcg"]):
      print(f"  EASE^R lambda {r:>6}: HR@10 {float(hr):.4f} "
            f"NDCG@10 {float(ndcg):.4f}", flush=True)


def main(argv):
  del argv
  data = (data_lib.load_ncf(_DATA_DIR.value, _DATA_NAME.value)
          if _DATA_DIR.value else datasets.generate_default())
  print(f"{data.name}: {data.num_users} users, {data.num_items} items, "
        f"{len(data.train_users)} pairs; {os.cpu_count()} cores, JAX "
        f"{jax.__version__} on {jax.devices()[0].platform}", flush=True)
  if _IMPLICIT.value:
    import implicit  # pylint: disable=g-import-not-at-top
    print(f"implicit {implicit.__version__}: num_threads={_THREADS.value}, "
          "BLAS threads 1", flush=True)
  print(f"ours: solver={_SOLVER.value}" + (
      f", {_CG_STEPS.value} steps" if _SOLVER.value == "cg" else ""))
  for dim in (int(d) for d in _DIMS.value):
    out = _speed(data, dim)
    line = " ".join(f"{name} {sec:.3f} s" for name, sec in out.items())
    ratios = " ".join(f"ours/{name} {out['ours'] / out[name]:.2f}x"
                      for name in out if name.startswith("implicit"))
    print(f"d={dim}: {line}; {ratios}", flush=True)
  mask = jnp.asarray(evaluate.candidate_mask(data.test_items,
                                             data.test_negatives))
  if _QUALITY.value:
    for dim in (int(d) for d in _DIMS.value):
      _ials_quality(data, dim, mask)
  _ease(data, mask)


if __name__ == "__main__":
  cli.run(main)
