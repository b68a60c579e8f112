"""Speed of the full-ranking evaluation (full_ranking.py), after compilation.

python benchmarks/full_ranking_speed.py  # generated data, both problems
python benchmarks/full_ranking_speed.py --data_dir=/work/shared/data/ml-1m \
    --gowalla_dir=/work/shared/data/gowalla

Two problems (issue 14's targets on a 2-core CPU):
  ml-1m:   6,040 users x 3,706 items, ~1M training pairs, one test item per
           user (NCF's split from --data_dir, or generated with its shape);
           MF under 1 s;
  gowalla: 29,858 users x 40,981 items, ~810k training pairs, ~7 test items
           per user (LightGCN's split from --gowalla_dir, or generated);
           MF under 30 s; the MLP and NeuMF as a ratio to MF.
EASE^R (--ease) is timed scored from B^T's rows at each history (its
params hold diag(P)) over every user, and against its dense scoring
(x_u B^T[chunk]^T, users x items^2) on the --learned_users users.
Models have random weights (the cost does not depend on them): MF at d = 64;
EASE^R a B^T = U U^T / diag(P) (U: items x 16), as symmetric as EASE^R's P;
the MLP and NeuMF as train.make_model builds them at d = 64 (MLP: [p, q] ->
128, 64, 32; NeuMF: GMF 21 + MLP 42 per side -> 84, 42, 21). Scoring every
user with the MLP takes minutes on 2 cores, so the learned models are timed
on the first --learned_users users of each problem, beside MF on the same
users; their ratio to MF is per user, and their full time is extrapolated.
"""

import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from dot_vs_learned import data as data_lib
from dot_vs_learned import ease
from dot_vs_learned import full_ranking
from dot_vs_learned import models
import cli  # benchmarks/ is on sys.path when this script runs

_DATA_DIR = flags.DEFINE_string("data_dir", "", "NCF ml-1m files; '' = "
                                "generated with ML-1M's shape.")
_GOWALLA_DIR = flags.DEFINE_string(
    "gowalla_dir", "", "LightGCN train.txt and test.txt; '' = generated with "
    "Gowalla's size.")
_PROBLEMS = flags.DEFINE_list("problems", ["ml-1m", "gowalla"], "what to time")
_LEARNED_USERS = flags.DEFINE_integer("learned_users", 256, "users timed for "
                                      "the MLP and NeuMF (0: skip them).")
_ITEM_CHUNK = flags.DEFINE_integer("item_chunk", 4096, "items per scan step "
                                   "(MF); the learned models use 1024.")
_USER_CHUNK = flags.DEFINE_integer("user_chunk", 256, "users per chunk (MF); "
                                   "the learned models use 64.")
_EASE = flags.DEFINE_bool("ease", True, "time EASE^R (an items x items B^T: "
                          "6.7 GB for gowalla, with the 4.9 GB histories)")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls after compiling; "
                                "the fastest is reported.")


def generate(num_users, num_items, num_pairs, test_fraction, seed=0):
  """Distinct (user, item) pairs, users and items long-tailed, split at
  random: test_fraction of the pairs, or (None) one pair per user."""
  rng = np.random.default_rng(seed)
  user_p = rng.lognormal(0.0, 1.0, num_users)
  item_p = 1.0 / (1.0 + rng.permutation(num_items)) ** 0.8
  users = rng.choice(num_users, 2 * num_pairs, p=user_p / user_p.sum())
  items = rng.choice(num_items, 2 * num_pairs, p=item_p / item_p.sum())
  keys = np.unique(users.astype(np.int64) * num_items + items)
  keys = rng.permutation(keys)[:num_pairs]
  if test_fraction is None:
    test = np.zeros(len(keys), bool)
    test[np.unique(keys // num_items, return_index=True)[1]] = True
  else:
    test = rng.random(len(keys)) < test_fraction
  return (num_users, num_items, (keys[~test] // num_items,
                                 keys[~test] % num_items),
          (keys[test] // num_items, keys[test] % num_items))


def read_lightgcn(directory):
  """LightGCN's train.txt / test.txt: `user item item ...` per line."""
  def pairs(name):
    users, items = [], []
    with open(os.path.join(directory, name)) as f:
      for line in f:
        ids = [int(t) for t in line.split()]
        users += [ids[0]] * (len(ids) - 1)
        items += ids[1:]
    return np.array(users), np.array(items)
  train, test = pairs("train.txt"), pairs("test.txt")
  return (int(max(train[0].max(), test[0].max())) + 1,
          int(max(train[1].max(), test[1].max())) + 1, train, test)


def load_problem(name):
  """(source, (num_users, num_items, train pairs, test pairs))."""
  if name == "ml-1m":
    if not _DATA_DIR.value:
      return "generated", generate(6040, 3706, 1_000_209, None)
    data = data_lib.load_ncf(_DATA_DIR.value, "ml-1m")
    return f"NCF files in {_DATA_DIR.value}", (
        data.num_users, data.num_items, (data.train_users, data.train_items),
        (np.arange(data.num_users), data.test_items))
  if _GOWALLA_DIR.value:
    return (f"LightGCN files in {_GOWALLA_DIR.value}",
            read_lightgcn(_GOWALLA_DIR.value))
  return "generated", generate(29_858, 40_981, 1_027_464, 0.2117)


def random_params(name, num_users, num_items, train=None):
  """Parameters with the shapes of train.make_model's models at d = 64;
  EASE^R's from its training pairs `train`."""
  key = jax.random.key(0)
  if name == "ease":
    # EASE^R's structure, diag(P) B^T symmetric: B^T = S / diag row-wise,
    # S = U U^T, so both scorings compute the same model.
    rng = np.random.default_rng(0)
    factors = rng.standard_normal((num_items, 16), dtype=np.float32)
    weights = ease.host_zeros((num_items, num_items))
    np.matmul(factors, factors.T, out=weights)
    diag = rng.uniform(0.5, 1.5, num_items).astype(np.float32)
    weights /= diag[:, None]
    return models.EaseParams(
        ease.on_device(weights),
        ease.on_device(ease.history_matrix(*train, num_users, num_items)),
        jax.numpy.asarray(diag))
  if name == "mf":
    return models.init_mf(key, num_users, num_items, 64, 0.1)
  module = (models.MLP(num_users, num_items, 64, (128, 64, 32))
            if name == "mlp" else
            models.NeuMF(num_users, num_items, 21, 42, (84, 42, 21)))
  ids = np.zeros((1,), np.int32)
  return jax.jit(module.init)(key, ids, ids)


def prepare(name, problem, users, params=None, ease_rows=None):
  """Compiles the evaluation of a model (`params`, or random ones) on the
  test pairs of users 0..users-1 (None: all); returns (first call s,
  metrics, run), run() -> seconds."""
  num_users, num_items, train, test = problem
  if users is not None:
    keep = test[0] < users
    test = (test[0][keep], test[1][keep])
  learned = name in ("mlp", "neumf")
  evaluator = full_ranking.make_evaluator(
      num_items, *train, *test, ks=(10, 20),
      item_chunk=1024 if learned else _ITEM_CHUNK.value,
      user_chunk=64 if learned else _USER_CHUNK.value, ease_rows=ease_rows)
  params = (random_params(name, num_users, num_items, train)
            if params is None else params)

  def run():
    start = time.perf_counter()
    jax.block_until_ready(evaluator(params))
    return time.perf_counter() - start

  start = time.perf_counter()
  metrics = jax.block_until_ready(evaluator(params))
  return time.perf_counter() - start, metrics, run


def time_ease(problem_name, problem, subset):
  """Rows of EASE^R's timings: from B^T's rows over every user, then
  against its dense scoring on the first `subset` users (0: skip)."""
  params = random_params("ease", *problem[:3])
  first, _, run = prepare("ease", problem, None, params, ease_rows=True)
  seconds = min(run() for _ in range(_REPEATS.value))
  print(f"  ease (B^T's rows at the histories), all users: {seconds:.3f} s "
        f"(first call {first:.1f} s)", flush=True)
  rows = [(problem_name, "ease, rows", "all", first, seconds, seconds, "-")]
  if not subset:
    return rows
  runs = {"ease, rows": prepare("ease", problem, subset, params, True),
          "ease, dense": prepare("ease", problem, subset, params, False)}
  timed = time_in_turn(problem_name, problem, runs, "ease, rows", "rows",
                       subset)
  for name, (seconds, ratio, metrics, row) in timed.items():
    rows.append(row)
    # Random weights: the mrr (never 0) shows both paths rank alike.
    print(f"  {name}, {subset} users: {seconds:.3f} s, {ratio:.1f}x the "
          f"rows; mrr {float(metrics['mrr']):.8f}", flush=True)
  return rows


def time_in_turn(problem_name, problem, runs, base, label, subset):
  """Times prepared runs (name -> prepare(...) on the first `subset` users)
  in turn, the fastest of --repeats each: {name: (seconds, ratio to
  runs[base], metrics, table row)}."""
  share = np.mean(problem[3][0] < subset)
  best = {name: float("inf") for name in runs}
  for _ in range(_REPEATS.value):  # interleaved: load changes hit all
    for name, (_, _, run) in runs.items():
      best[name] = min(best[name], run())
  timed = {}
  for name, (first, metrics, _) in runs.items():
    ratio = best[name] / best[base]
    timed[name] = (best[name], ratio, metrics,
                   (problem_name, name, subset, first, best[name],
                    best[name] / share, f"{ratio:.1f} x {label}"))
  return timed


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  print(f"jax {jax.__version__}; devices {jax.devices()}; {os.cpu_count()} "
        f"CPU cores ({len(os.sched_getaffinity(0))} usable)")
  rows = []
  for problem_name in _PROBLEMS.value:
    source, problem = load_problem(problem_name)
    num_users, num_items, train, test = problem
    print(f"{problem_name}: {source}: {num_users} users x {num_items} items, "
          f"{len(train[0])} training pairs, {len(test[0])} test pairs "
          f"({len(test[0]) / len(np.unique(test[0])):.2f} per test user)",
          flush=True)
    first, metrics, run = prepare("mf", problem, None)
    seconds = min(run() for _ in range(_REPEATS.value))
    rows.append((problem_name, "mf", "all", first, seconds, seconds, "-"))
    print(f"  mf, all users: {seconds:.3f} s (first call {first:.1f} s); "
          f"recall@20 {float(metrics['recall@20']):.4f} (random weights)",
          flush=True)
    subset = min(_LEARNED_USERS.value, num_users)
    if _EASE.value:
      rows.extend(time_ease(problem_name, problem, subset))
    if not subset:
      continue
    runs = {name: prepare(name, problem, subset)
            for name in ("mf", "mlp", "neumf")}
    timed = time_in_turn(problem_name, problem, runs, "mf", "mf", subset)
    for name, (seconds, ratio, _, row) in timed.items():
      rows.append(row)
      print(f"  {name}, {subset} users: {seconds:.3f} s, {ratio:.1f}x MF "
            "on them", flush=True)
  header = ["problem", "model", "users timed", "first call s", "timed s",
            "all users s", "ratio"]
  print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
  for problem_name, name, users, first, timed, all_s, ratio in rows:
    cells = [problem_name, name, users, f"{first:.1f}", f"{timed:.3f}",
             f"{all_s:.3f}", ratio]
    print("| " + " | ".join(str(c) for c in cells) + " |")
  print("\ntimed s: the fastest of --repeats calls after the first (which "
        "compiles). all users s: measured where users timed is 'all', else "
        "extrapolated by the timed users' share of the test pairs. ratio: "
        "the MLP and NeuMF against MF, EASE^R's dense scoring against its "
        "rows, on the same users, timed in turn.")


if __name__ == "__main__":
  cli.run(main)
