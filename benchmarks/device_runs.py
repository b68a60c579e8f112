"""The device check's run sections: whole runs, their quality, time, drift.

  e2e        ncf.run of configs/movielens.py (App. A.2) at the spec's d,
             seeds and epochs: wall time and final HR@10 / NDCG@10; its
             progress (metrics.jsonl) is reported as it goes, so a run cut
             by its budget still says how far it got;
  drift      the same configuration run twice from the same keys through
             train.make_train: the largest difference of any metric or
             parameter (a section of its own under DETERMINISTIC too);
  synthetic  one §4 cell as synthetic.train_cell trains it, timed by part,
             on data that generate_synthetic makes on the CPU in a process
             of its own from the start; then the grid's other shapes and
             synthetic.full_grid_estimate.
Each is a section of device_runner: fn(spec, report) -> result.
"""

import importlib.util
import json
import os
import pathlib
import threading
import time

import device_runner  # benchmarks/ is on sys.path when the check runs

REPO = pathlib.Path(__file__).resolve().parents[1]
# Deterministic scatters on the GPU; it also turns autotuning off.
DETERMINISTIC = "--xla_gpu_deterministic_ops=true"


def movielens_config(spec, epochs):
  """configs/movielens.py (App. A.2) on the given data, d, seeds, epochs."""
  path = REPO / "configs" / "movielens.py"
  module_spec = importlib.util.spec_from_file_location("movielens", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config()
  config.data.update(name=spec["data_name"], dir=spec["data_dir"])
  config.model.dim = spec["dim"]
  config.train.update(num_seeds=spec["seeds"], epochs=epochs)
  config.eval.every = min(config.eval.every, epochs)
  return config


def e2e_progress(workdir) -> dict:
  """Epochs done and seconds so far from a run's metrics.jsonl, which may
  end in a line being written."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  records = []
  for line in path.read_text().splitlines() if path.exists() else []:
    try:
      records.append(json.loads(line))
    except ValueError:  # a line being written
      pass
  if not records:
    return {"epochs_done": 0}
  last = records[-1]
  return {"epochs_done": last.get("epoch"), "seconds": last.get("seconds"),
          "hr@10": last.get("hr@10", {}).get("mean"),
          "evaluations": [(r.get("epoch"), r.get("seconds")) for r in records]}


def e2e(spec, report):
  """ncf.run of configs/movielens.py at d, seeds and epochs of the spec."""
  from dot_vs_learned import ncf  # pylint: disable=g-import-not-at-top
  config = movielens_config(spec, spec["epochs"])
  workdir = pathlib.Path(spec["scratch"]) / "e2e"
  done = threading.Event()

  def watch():  # progress, in case the budget runs out first
    while not done.wait(5.0):
      report({"progress": e2e_progress(workdir)})

  threading.Thread(target=watch, daemon=True).start()
  start = time.time()
  try:
    final = ncf.run(config, workdir)
  finally:
    done.set()
  return {"wall_s": time.time() - start, "run_s": final["seconds"],
          "data": spec["data_name"], "epochs": spec["epochs"],
          "seeds": spec["seeds"], "d": spec["dim"],
          "batch_size": config.train.batch_size,
          "final": {k: final["final"][k] for k in ("hr@10", "ndcg@10", "loss")},
          "progress": e2e_progress(workdir)}


def drift(spec, report):
  """Two identical runs of train.make_train: their largest differences."""
  del report
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import datasets  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import train  # pylint: disable=g-import-not-at-top
  config = movielens_config(spec, spec["epochs"])
  init, run = train.make_train(config, datasets.load_dataset(config.data))
  keys = jax.random.split(jax.random.key(config.train.seed), spec["seeds"])
  runs = []
  while len(runs) < 2:
    if runs and time.time() + runs[0][0] > spec["deadline"]:
      break  # the first run's time (compile included) bounds the second's
    start = time.perf_counter()
    states, metrics = jax.block_until_ready(run(init(keys), spec["epochs"]))
    runs.append((time.perf_counter() - start,
                 jax.device_get((states.params, metrics))))
  out = {"xla_flags": os.environ.get("XLA_FLAGS", ""), "d": spec["dim"],
         "seeds": spec["seeds"], "epochs": spec["epochs"],
         "seconds": [s for s, _ in runs],
         "hr@10": float(np.mean(runs[0][1][1]["hr"]))}
  if len(runs) == 2:
    (params_a, a), (params_b, b) = runs[0][1], runs[1][1]
    diff = {k: float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k]))))
            for k in ("hr", "ndcg", "loss")}
    diff["params"] = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                         for x, y in zip(jax.tree.leaves(params_a),
                                         jax.tree.leaves(params_b)))
    out["max_abs_diff"] = diff
  return out


def synthetic_config(spec):
  """synthetic.default_config with the spec's overrides of its fields."""
  from dot_vs_learned import synthetic  # pylint: disable=g-import-not-at-top
  config = synthetic.default_config()
  config.synthetic.update(spec["overrides"])
  return config


def generate_synthetic(spec, folder) -> None:
  """synthetic_data.stack_seeds of the cell, saved as .npy files; done.json,
  with the seconds it took, is written last."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import synthetic_data  # pylint: disable=g-import-not-at-top
  folder, c = pathlib.Path(folder), synthetic_config(spec).synthetic
  start = time.time()
  data = synthetic_data.stack_seeds(spec["num_users"], spec["dim"], c)
  seconds = time.time() - start
  for field, array in zip(data._fields, data):
    np.save(folder / f"{field}.npy", array)
  (folder / "done.tmp").write_text(json.dumps({"generate_s": seconds}))
  os.replace(folder / "done.tmp", folder / "done.json")


def _load_cell_data(folder, deadline):
  """The cell's data from generate_synthetic's folder, on the device, once
  done.json is there; and done.json."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import synthetic_data  # pylint: disable=g-import-not-at-top
  folder = pathlib.Path(folder)
  while not (folder / "done.json").exists():
    if time.time() > deadline:
      raise TimeoutError("the cell's data (generated since the start) is "
                         "not ready")
    time.sleep(0.5)
  done = json.loads((folder / "done.json").read_text())
  start = time.perf_counter()
  data = jax.block_until_ready(jax.device_put(synthetic_data.Data(
      *(np.load(folder / f"{f}.npy") for f in synthetic_data.Data._fields))))
  return data, dict(done, to_device_s=time.perf_counter() - start)


def synthetic(spec, report):
  """The §4 cell as synthetic.train_cell trains it (no checkpoints), timed
  by part; then samples/s of the grid's other (d, multiplier) shapes."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import synthetic as synthetic_lib  # pylint: disable=g-import-not-at-top
  synthetic_speed = device_runner.benchmark("synthetic_speed")
  config = synthetic_config(spec)
  c, d, mult = config.synthetic, spec["dim"], spec["multiplier"]
  data, out = _load_cell_data(spec["data_folder"], spec["deadline"])
  clock = time.perf_counter()

  def lap(name):
    nonlocal clock
    out[name], clock = time.perf_counter() - clock, time.perf_counter()

  num_train = data.train.shape[1]
  init, epoch, evaluate = synthetic_lib.make_cell_programs(d, mult,
                                                           num_train, c)
  states = jax.jit(jax.vmap(init))(
      jax.random.split(jax.random.key(c.seed), c.num_seeds))
  compiled = jax.jit(jax.vmap(epoch), donate_argnums=0).lower(
      states, data).compile()
  lap("compile_s")
  for _ in range(c.epochs):
    states, loss = jax.block_until_ready(compiled(states, data))
  lap("train_s")
  metrics = jax.device_get(jax.jit(jax.vmap(evaluate))(states.params, data))
  lap("evaluate_s")
  rate = c.num_seeds * num_train * c.epochs / out["train_s"]
  out.update(d=d, num_users=spec["num_users"], multiplier=mult,
             seeds=c.num_seeds, epochs=c.epochs, num_train=int(num_train),
             samples_per_s=rate, train_mse=float(np.mean(loss)),
             rmse={k: float(np.mean(v)) for k, v in metrics.items()})
  out["cell_s"] = sum(out[k] for k in ("generate_s", "to_device_s",
                                       "compile_s", "train_s", "evaluate_s"))
  del data, states
  report(out)
  # The other shapes, largest first, on short data as synthetic_speed.py
  # times them; a shape left unmeasured counts as free: a lower bound.
  short = synthetic_config(spec).synthetic
  short.update(spec["short"])
  shapes = sorted(((dim, m) for m in c.multipliers for dim in c.dims
                   if (dim, m) != (d, mult)), key=lambda s: -s[0] * s[1])
  rows = device_runner.measure_until(
      spec["deadline"], [dict(dim=dim, multiplier=m) for dim, m in shapes],
      lambda dim, multiplier: {"rate": synthetic_speed.trainer_rates(
          spec["short_num_users"], dim, multiplier, short, 1,
          sequential=False)[0]})
  rates = {(d, mult): rate, **{(r["dim"], r["multiplier"]): r["rate"]
                               for r in rows if "skipped" not in r}}
  grid = {shape: rates.get(shape, float("inf"))
          for shape in [(d, mult)] + shapes}
  out["grid_s"] = synthetic_lib.full_grid_estimate(config, grid)
  out["grid_shapes_measured"] = f"{len(rates)} of {len(grid)}"
  out["grid_rates"] = {f"d={k[0]},x{k[1]}": v for k, v in rates.items()}
  return out
