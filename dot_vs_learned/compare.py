"""Is a dot product enough on my data? Every model tuned the same way, by one
command (configs/compare.py).

python -m dot_vs_learned.main --config=configs/compare.py \
  --config.data.dir=DIR --config.data.name=NAME --workdir=W

  1. The tuning split, into W/tuning_split/ (config.data is the real split):
     NCF files lose each user's latest training interaction (App. A.2), or
     a seeded random one when the file has no real timestamps
     (compare.pick="auto": splits.holdout_split); item lists a seeded
     compare.test_fraction of each user's training items. Of the real test
     file only its counts and validity are used: nothing of it reaches the
     selection.
  2. Each model of compare.models tuned on it by tuning.py's vmapped,
     sharded sweep, on its own grid (compare.<model>; the iALS and EASE^R
     grids scale with the data: alpha0 x items and lambda / mean item count
     are what the grids hold), judged by sampled HR@k (item lists: full
     recall@k) at compare.evaluations evaluations per point, which select
     the epoch too. compare.budget, the epochs x points of the whole sweep,
     is split equally among the models that train in epochs.
  3. Each model's selection trained on the real split with compare.num_seeds
     seeds in final_{model}/, evaluated on the real test file; popularity
     as the floor.
  4. comparison.md, comparison.csv and comparison.png (report_compare.py).
A killed command resumes: recorded cells are kept, final runs resume from
their checkpoints. The ETA printed before the sweep comes from one timed
epoch of one point per model (eta_probes.json: a resumed command on the
same kind of devices reuses them), times the point-epochs left: the cells
not recorded, less what their checkpoints hold, and at most compare.
num_seeds x the plan's epochs for each final run not finished.
"""

import copy
import pathlib

from absl import logging

from dot_vs_learned import checks
from dot_vs_learned import checkpoints
from dot_vs_learned import compare_plan
from dot_vs_learned import data as data_lib
from dot_vs_learned import datasets
from dot_vs_learned import evaluate
from dot_vs_learned import item_lists
from dot_vs_learned import loop
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import ncf_eval
from dot_vs_learned import report_compare
from dot_vs_learned import results
from dot_vs_learned import search_space
from dot_vs_learned import split_output
from dot_vs_learned import splits
from dot_vs_learned import sweep
from dot_vs_learned import tuning
from dot_vs_learned import workdir as workdir_lib

MODELS = ("popularity", "mf", "ials", "ease", "gmf", "mlp", "neumf")
SPLIT = "tuning_split"
PLAN = "plan.json"


# compare.<field>: (the values' test, what it asks); every model's grid is
# checked, so a bad value stops the command before anything is written.
_GRIDS = {
    "mf.learning_rates": (lambda v: checks.is_number(v) and v > 0, "finite values > 0"),
    "mf.regs": (lambda v: checks.is_number(v) and v >= 0, "finite values >= 0"),
    "mf.num_negatives": (lambda v: checks.is_whole(v) and v >= 1,
                         "integers >= 1"),
    # d counts MF's bias (Eq. 2): one factor needs d = 2.
    "mf.dims": (lambda v: checks.is_whole(v) and v >= 2, "integers >= 2"),
    "ncf.learning_rates": (lambda v: checks.is_number(v) and v > 0, "finite values > 0"),
    "ncf.regs": (lambda v: checks.is_number(v) and v >= 0, "finite values >= 0"),
    # MLP's d = 2k; NeuMF's is the multiple of 3 below d.
    "ncf.dims": (lambda v: checks.is_whole(v) and v >= 4 and v % 2 == 0,
                 "even integers >= 4"),
    "ials.regs": (lambda v: checks.is_number(v) and v > 0, "finite values > 0"),
    "ials.alpha0_totals": (lambda v: checks.is_number(v) and v > 0, "finite values > 0"),
    "ials.dims": (lambda v: checks.is_whole(v) and v >= 2, "integers >= 2"),
    "ease.regs_per_count": (lambda v: checks.is_number(v) and v > 0, "finite values > 0"),
}


def validate(config) -> None:
  c, check = config.compare, checks.check
  check(len(c.models) > 0 and set(c.models) <= set(MODELS)
        and len(set(c.models)) == len(c.models), "compare.models",
        c.models, f"needs distinct values among {MODELS}; on the command "
        "line quote each: \"--config.compare.models=('mf','gmf')\"")
  check(c.evaluations >= 1, "compare.evaluations", c.evaluations,
        "must be >= 1")
  check(c.num_seeds >= 1, "compare.num_seeds", c.num_seeds, "must be >= 1")
  check(checks.is_whole(c.split_seed) and c.split_seed >= 0,
        "compare.split_seed", c.split_seed, "must be a whole number >= 0")
  check(c.pick in splits.PICKS, "compare.pick", c.pick,
        f"must be one of {splits.PICKS}")
  check(0 < c.test_fraction < 1, "compare.test_fraction", c.test_fraction,
        "must be in (0, 1)")
  check(c.ncf.optimizer in ("adam", "lazy_adam"), "compare.ncf.optimizer",
        c.ncf.optimizer, "must be 'adam' (NCF's) or 'lazy_adam'")
  check(config.train.optimizer in ("batched", "exact"), "train.optimizer",
        config.train.optimizer, "compare tunes MF with App. A.1's SGD "
        "('batched' or 'exact'); GMF, MLP and NeuMF take "
        "compare.ncf.optimizer")
  for field, (ok, need) in _GRIDS.items():
    section, name = field.split(".")
    values = c[section][name]
    check(len(values) > 0 and all(ok(v) for v in values),
          f"compare.{field}", values, f"needs {need}")
  trained = compare_plan.trained(config)
  most = max((compare_plan.grid_size(config, n) for n in trained), default=0)
  check(c.budget >= max(1, most * len(trained)), "compare.budget", c.budget,
        f"{len(trained)} models train in epochs, on grids of up to {most} "
        f"points: the budget needs at least {most * len(trained)} epochs")
  ncf_config.validate(config)


def tuning_split(config):
  """The tuning split of config.data in memory, every check made and nothing
  written: (NCFData, train times, test times), or ListData."""
  c = config.compare
  if config.data.format == "lists":
    return item_lists.holdout(config.data.dir, c.test_fraction, c.split_seed,
                              config.data.name)
  return splits.holdout(config.data.dir, config.data.name,
                        compare_plan.split_name(config), c.split_seed, c.pick)


def write_tuning_split(config, split, workdir) -> pathlib.Path:
  """Writes (once) tuning_split's `split` into workdir/tuning_split."""
  out = pathlib.Path(workdir) / SPLIT
  # A split cut short by a kill (a file missing) is written again.
  if config.data.format == "lists":
    if not all((out / f).exists() for f in item_lists.FILES):
      item_lists.write_lists(split, out)
    return out
  name = compare_plan.split_name(config)
  if not all((out / f"{name}.{suffix}").exists()
             for suffix in data_lib.SUFFIXES):
    pairs, train_times, test_times = split
    split_output.write_split(pairs, out, name, train_times, test_times)
  return out


def run(config, workdir, overwrite=False) -> dict:
  """Runs (or resumes) the comparison into `workdir`."""
  validate(config)
  workdir_lib.check_path(workdir)
  if not config.data.dir:
    raise data_lib.DataError(
        "compare needs a dataset in files: set --config.data.dir=DIR and "
        "--config.data.name=NAME")
  data = datasets.load_dataset(config.data)  # validated before any write
  ncf_config.validate(config, ncf_eval.num_candidates(data))
  ncf_config.validate_cutoffs(config, data)  # popularity's too
  tuning_pairs = tuning_split(config)  # its own checks, before any write
  split = tuning_pairs[0] if config.data.format == "ncf" else tuning_pairs
  for t in compare_plan.plan(config, split, SPLIT).values():
    t.final.dims = t.sweep.dims  # its final run trains the selected d
    tuning.check_sizes(t, split, data)
  with workdir_lib.use(workdir, config.to_dict(), overwrite,
                       datasets.input_paths(config.data),
                       outputs=(SPLIT, sweep.CELLS, PLAN,
                                compare_plan.PROBES, tuning.EASE_GRID,
                                "final_*",
                                *report_compare.FILES)) as path:
    return _run(config, data, tuning_pairs, path)


def _run(config, data, tuning_pairs, workdir) -> dict:
  split_dir = write_tuning_split(config, tuning_pairs, workdir)
  split_config = copy.deepcopy(config.data)
  split_config.update(dir=str(split_dir), name=compare_plan.split_name(config))
  split = datasets.load_dataset(split_config)
  plans = compare_plan.plan(config, split, split_dir)
  results.write_json(workdir / PLAN, {
      name: {**({} if name in ncf_config.CLOSED_FORM else
                {"epochs": t.train.epochs, "every": t.eval.every}),
             "points": len(search_space.points(t, name)),
             "shapes": search_space.shapes(t)}
      for name, t in plans.items()})
  done = sweep.done_cells(workdir)
  undone = {name: [shape for shape in search_space.shapes(t)
                   if _cell(*shape) not in done]
            for name, t in plans.items()}
  # Point-epochs left: the final runs not finished, at most num_seeds x the
  # plan's epochs; the cells not recorded, less their checkpoints.
  finals_left = {name: config.compare.num_seeds * t.train.epochs
                 for name, t in plans.items()
                 if not (workdir / f"final_{name}" / results.RESULTS).exists()}
  if finals_left:
    sweep_left = {name: sum(len(search_space.points(t, name)) * t.train.epochs
                            - tuning.point_epochs_saved(workdir, *shape)
                            for shape in undone[name])
                  for name, t in plans.items()}
    probes = compare_plan.workdir_probes(
        {name: plans[name] for name in finals_left}, split, workdir)
    logging.info("ETA about %s for the sweep's %d cells left, then at most "
                 "%s for the final runs (one probe epoch per model; "
                 "evaluations not counted)",
                 loop.format_eta(compare_plan.eta(probes, sweep_left)),
                 sum(len(shapes) for shapes in undone.values()),
                 loop.format_eta(compare_plan.eta(probes, finals_left)))
  rows = {}
  for name in config.compare.models:
    if name == "popularity":
      rows[name] = _popularity(config, workdir)
      continue
    t = plans[name]
    records = []
    for n, dim, m in search_space.shapes(t):
      cell = _cell(n, dim, m)
      if cell not in done:
        done[cell] = dict(tuning.tune_shape(t, split, n, dim, m, workdir),
                          cell=cell)
        sweep.record_cell(workdir, done[cell])
      checkpoints.remove(workdir,
                         f"{tuning.checkpoint_prefix(n, dim, m)}_points*")
      records.append(done[cell])
    names = tuning.curve_names(t, split)
    chosen = search_space.select(records, names,
                                 ncf_eval.selection(t, split))
    dim = chosen["dim"] or t.model.dim
    final_dir = workdir / f"final_{name}"
    final = results.read_results(final_dir)
    if final is None:
      final = ncf.run(tuning.final_config(t, chosen, dim), final_dir)
    rows[name] = {"selected": chosen, "final": final,
                  "tuning_seconds": sum(r["seconds"] for r in records)}
  out = {"experiment": "compare", "dataset": data.name,
         "judged_by": list(ncf_eval.selection(config, data)),
         "sampled": evaluate.has_negatives(data), "models": rows}
  report_compare.write(workdir, out)
  results.write_json(workdir / results.RESULTS, out)
  return out


def _cell(name, dim, m) -> str:
  return f"tune model={name} d={dim} m={m}"


def _popularity(config, workdir) -> dict:
  run_dir = workdir / "final_popularity"
  final = results.read_results(run_dir)
  if final is None:
    pop = copy.deepcopy(config)
    with pop.unlocked():
      del pop.compare
    pop.experiment = "ncf"
    pop.model.name = "popularity"
    final = ncf.run(pop, run_dir)
  return {"selected": {}, "final": final, "tuning_seconds": 0.0}


def default_config():
  """The comparison's fields: the NCF run's, and the compare section."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ncf_config.default_config()
  config.experiment = "compare"
  config.compare = ml_collections.ConfigDict(dict(
      models=MODELS,  # compared; popularity is the floor (not tuned)
      budget=2000,  # epochs x points over the whole sweep, split equally
      # among the models that train in epochs
      evaluations=4,  # evaluations per tuning point (the epoch choices)
      num_seeds=3,  # seeds of each final run
      pick="auto",  # NCF files: the held-out tuning item; "auto": latest
      # by time, random when the file has no real timestamps
      test_fraction=0.2,  # item lists: share of each user's training items
      # held out for tuning
      split_seed=0,  # seed of the tuning split
  ))
  config.compare.mf = ml_collections.ConfigDict(dict(  # App. A.1's SGD
      learning_rates=(0.003, 0.01, 0.03),  # eta (App. A.2: 0.002 over 256
      # epochs; a budget of tens of epochs needs larger steps)
      regs=(0.001, 0.003, 0.01),  # lambda
      num_negatives=(8,),  # m (a program each; each divides MF's share)
      dims=(64,),  # d (a program each)
  ))
  config.compare.ncf = ml_collections.ConfigDict(dict(  # GMF, MLP, NeuMF
      learning_rates=(0.0003, 0.001, 0.003),  # Adam's; NCF: 0.001
      regs=(0.0, 0.0001, 0.001),  # L2 on the embedding rows used; NCF: 0
      dims=(64,),  # d of GMF and MLP (NCF's predictive factor 32 is MLP's
      # d = 64); NeuMF's: the multiple of 3 below (63)
      optimizer="adam",  # NCF's dense Adam, or "lazy_adam" (lazy_adam.py;
      # several times faster on large catalogues: docs/results.md)
  ))
  config.compare.ials = ml_collections.ConfigDict(dict(
      regs=(0.001, 0.003, 0.01),  # lambda of the frequency-scaled L2
      alpha0_totals=(100.0, 300.0, 1000.0),  # alpha0 x items (ML-1M's 0.3
      # x 3,706 = 1,112); alpha0 = these / the catalogue's size
      dims=(64,),  # d (a program each)
  ))
  config.compare.ease = ml_collections.ConfigDict(dict(
      regs_per_count=(0.5, 1.0, 2.0, 4.0, 8.0),  # lambda / mean training
      # pairs per item (ML-1M's 1,000 is 3.7 x its 268)
  ))
  config.ials.solver = "cg"
  return config
