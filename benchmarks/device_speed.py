"""The device check's speed sections: training steps and top-10 serving.

  mf         MF `batched` training examples/s at each d (App. A.2 values,
             B = 1,024) and the floor, the step cut to its gathers and
             scatter-adds (benchmarks/mf_speed.py); then `batched` at the
             first d and larger batches;
  learned    GMF, MLP, NeuMF with NCF's Adam recipe, examples/s at each
             batch (benchmarks/learned_speed.py, benchmarks/timing.py);
  retrieval  exact top-10 over n items (one query at a time and in batches)
             against NCF's MLP scoring every item (serving.run).
Each is a section of device_runner: fn(spec, report) -> {"rows": [...]},
rows skipped once the section's time is 80% spent.
"""

import pathlib

import device_runner  # benchmarks/ is on sys.path when the check runs


def mf(spec, report):
  """MF `batched` and the floor (mf_speed.measure) at the config's batch."""
  mf_speed = device_runner.benchmark("mf_speed")
  from dot_vs_learned import ncf_config  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import sgd  # pylint: disable=g-import-not-at-top
  t = ncf_config.default_config().train  # App. A.2, as mf_speed.main
  base = dict(data_dir=spec["data_dir"], data_name=spec["data_name"],
              numpy_examples=0, epochs=1, min_seconds=spec["min_seconds"],
              seed=0, num_seeds=1, window=t.window,
              learning_rate=t.learning_rate, reg=t.reg,
              num_negatives=t.num_negatives, init_stddev=t.init_stddev)
  train_step = sgd.train_step

  def measure(d, method, batch_size):
    try:
      r = mf_speed.measure(dict(base, dim=d, method=method,
                                batch_size=batch_size))
    finally:
      sgd.train_step = train_step  # measure() put the floor step there
    return {"examples_per_s": r["examples"] / r["seconds"],
            "warmup_s": r["warmup"], "device_peak_mib": r["device_mib"]}

  items = [dict(d=d, method=m, batch_size=t.batch_size)
           for m in ("batched", "floor") for d in spec["dims"]]
  items += [dict(d=spec["dims"][0], method="batched", batch_size=b)
            for b in spec["large_batches"]]
  return {"rows": device_runner.measure_until(
      spec["deadline"], items, measure,
      lambda rows: report({"rows": rows}))}


def learned(spec, report):
  """GMF, MLP, NeuMF (NCF's Adam recipe) through timing.time_epochs."""
  learned_speed = device_runner.benchmark("learned_speed")
  import timing  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import data as data_lib  # pylint: disable=g-import-not-at-top
  data = data_lib.load_ncf(spec["data_dir"], spec["data_name"])
  per_epoch = data.train_users.shape[0] * (1 + spec["num_negatives"])

  def measure(model, batch_size):
    config = learned_speed.model_config(model, spec["dim"],
                                        spec["num_negatives"], batch_size)
    r = timing.time_epochs(data, config, dict(
        seed=0, num_seeds=1, epochs=1, min_seconds=spec["min_seconds"]))
    rate = r["examples"] / r["seconds"]
    return {"d": config.model.dim, "examples_per_s": rate,
            "seconds_per_epoch": per_epoch / rate, "warmup_s": r["warmup"]}

  items = [dict(model=m, batch_size=b) for b in spec["batches"]
           for m in spec["models"]]
  return {"rows": device_runner.measure_until(
      spec["deadline"], items, measure,
      lambda rows: report({"rows": rows}))}


def retrieval(spec, report):
  """serving.run: exact dot and the MLP with the first chunk size, then
  exact dot alone with each other chunk size (items per scan step)."""
  from dot_vs_learned import serving  # pylint: disable=g-import-not-at-top
  rows = []
  for chunk in spec["chunks"]:
    methods = ("dot", "mlp") if chunk == spec["chunks"][0] else ("dot",)
    config = serving.default_config()
    config.retrieval.update(
        nums_items=(spec["n"],), dims=(spec["d"],), methods=methods, k=10,
        latency_queries=spec["queries"], max_seconds=spec["max_seconds"],
        recall_queries=spec["queries"], chunk_size=chunk)
    workdir = pathlib.Path(spec["scratch"]) / f"retrieval_chunk{chunk}"
    for row in serving.run(config, workdir)["rows"]:
      rows.append(dict(row, chunk_size=min(chunk, spec["n"])))
    report({"rows": rows})
  return {"rows": rows}
