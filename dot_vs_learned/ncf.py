"""The NCF experiment (paper §3): train, evaluate every N epochs, write results.

The reported result is the configured final epoch (§3.4: never the best epoch
on the test set). The best test epoch is kept only under a name that says it
was selected on the test set.
"""

import copy
import functools
import time

from absl import logging
import jax
import numpy as np

from dot_vs_learned import checkpoints
from dot_vs_learned import datasets
from dot_vs_learned import distributed
from dot_vs_learned import dot_baselines
from dot_vs_learned import evaluate
from dot_vs_learned import loop
from dot_vs_learned import models
from dot_vs_learned import ncf_config
from dot_vs_learned import ncf_eval
from dot_vs_learned import results
from dot_vs_learned import summary as summary_lib
from dot_vs_learned import train
from dot_vs_learned import workdir as workdir_lib

STAGES = ("gmf", "mlp", "neumf")  # of neumf_pretrained


def run(config, workdir, overwrite=False) -> dict:
  """Runs the experiment of `config` into `workdir`; returns results.json."""
  ncf_config.validate(config)
  # Bad data, config values or workdirs fail here, before anything is
  # written.
  workdir_lib.check_path(workdir)
  data = datasets.load_dataset(config.data)
  ncf_config.validate(config, ncf_eval.num_candidates(data))
  ncf_config.validate_sizes(config, data)
  with workdir_lib.use(
      workdir, config.to_dict(), overwrite,
      datasets.input_paths(config.data)) as path:
    logging.info("dataset %s: %d users, %d items, %d training pairs, %s",
                 data.name, data.num_users, data.num_items,
                 data.train_users.shape[0],
                 f"{data.test_negatives.shape[1]} negatives per user"
                 if evaluate.has_negatives(data) else
                 f"{data.test_items.shape[0]} test pairs, full ranking")
    # Each process says its code: a resumed run's log names both.
    logging.info("code %s, JAX %s", summary_lib.code_version(),
                 jax.__version__)
    return _run(config, data, path)


def _run(config, data, workdir) -> dict:
  """Trains and evaluates into an opened workdir."""
  k = config.eval.k
  start = time.time()
  # Taken now: the checkout may change while a long run trains.
  environment = summary_lib.environment()
  if config.model.name in ncf_config.CLOSED_FORM:  # one fit, one record
    if config.model.name == "popularity":
      metrics = (dot_baselines.popularity_metrics(data, k)
                 if evaluate.has_negatives(data) else {})
      full = ncf_eval.popularity_full_ranking(config, data)
    else:
      if config.train.num_seeds > 1:
        logging.warning("ease has no randomness: one fit, not "
                        "train.num_seeds=%d", config.train.num_seeds)
      params, metrics = dot_baselines.fit_ease(config, data)
      evaluator = ncf_eval.make_full_ranking(config, data)
      full = evaluator(params) if evaluator else {}
      results.save_params(workdir, models.flatten_params(params))
    ranks = metrics.pop("rank")[None] if "rank" in metrics else None
    summary = {"epoch": 0, **{f"{name}@{k}": results.summarize([value])
                              for name, value in metrics.items()},
               **_extra_metrics(ranks, full, config, data)}
    results.replace_metrics(workdir, "", [summary])
    best = None
  else:
    train_fn = (_train_pretrained_neumf if config.model.name ==
                "neumf_pretrained" else _train)
    history, states = train_fn(config, data, workdir)
    summary = history[-1]
    judged_by = ncf_eval.selection(config, data)
    best = max(history, key=lambda r: tuple(r[name]["mean"]
                                            for name in judged_by))
    seeds = config.train.num_seeds  # the padding seeds dropped
    results.save_params(workdir, models.flatten_params(jax.tree.map(
        lambda x: x[:seeds], distributed.fetch(states.params))))
  closed = config.model.name in ncf_config.CLOSED_FORM
  final = {"model": config.model.name, "dataset": data.name,
           "dim": config.model.dim,
           "num_seeds": 1 if closed else config.train.num_seeds,
           "ncf_predictive_factor": ncf_config.predictive_factor(config.model),
           "judged_by": list(ncf_eval.selection(config, data)),
           "final": summary, "seconds": time.time() - start,
           "best_on_test_set_not_for_reporting": best,
           "environment": environment}
  written = summary_lib.write(workdir, config, final)
  results.write_json(workdir / results.RESULTS, final)  # last: marks done
  if not config.checkpoint.keep_finished:  # no longer needed to resume
    checkpoints.remove_finished(workdir, [
        pattern for name in ("train", *STAGES)
        for pattern in (name, f"{name}_padded*")])
  factor = final["ncf_predictive_factor"]
  logging.info("final (epoch %d) %s%s: %s", summary["epoch"],
               ncf_config.run_label(config.model.name, config.model.dim),
               "" if factor is None else f" (NCF predictive factor {factor})",
               {name: round(value["mean"], 4)
                for name, value in summary.items() if isinstance(value, dict)})
  logging.info("wrote %s: %s", workdir, ", ".join(sorted(
      [results.CONFIG, workdir_lib.INPUTS, results.METRICS, results.RESULTS,
       *written] +
      ([results.PARAMS] if (workdir / results.PARAMS).exists() else []))))
  return final


def _extra_metrics(ranks_PxU, full_metrics, config, data) -> dict:
  """The corrected sampled metrics (none without ranks: item lists) and the
  full-ranking ones (ncf_eval.py), summarized over seeds."""
  extra = dict(ncf_eval.corrected(ranks_PxU, config, data), **full_metrics)
  return {name: results.summarize(value) for name, value in extra.items()}


def _stage_configs(config):
  """GMF (d = k), MLP (2k) and NeuMF (3k) configs of NCF §3.4.1."""
  k, p = config.model.dim // 3, config.pretrain
  gmf, mlp, neumf = (copy.deepcopy(config) for _ in range(3))
  gmf.model.update(name="gmf", dim=k)
  mlp.model.update(name="mlp", dim=2 * k,
                   hidden=models.ncf_hidden(config.model))
  for stage in (gmf, mlp):
    stage.train.epochs = p.epochs
  neumf.model.name = "neumf"
  neumf.train.update(optimizer=p.finetune_optimizer,
                     learning_rate=p.finetune_learning_rate)
  return gmf, mlp, neumf


def _train_pretrained_neumf(config, data, workdir):
  """NCF §3.4.1: train GMF and MLP, initialize NeuMF from them, fine-tune."""
  gmf, mlp, neumf = _stage_configs(config)
  _, gmf_states = _train(gmf, data, workdir, stage="gmf")
  _, mlp_states = _train(mlp, data, workdir, stage="mlp")
  params = jax.vmap(functools.partial(models.neumf_from_pretrained,
                                      alpha=config.pretrain.alpha))(
                                          gmf_states.params, mlp_states.params)
  return _train(neumf, data, workdir, stage="neumf", init_params=params)


def _train(config, data, workdir, stage="", init_params=None):
  """Trains all seeds together, evaluating every `eval.every` epochs.

  Returns the evaluations (as in metrics.jsonl) and the final states, whose
  seeds may be padded to the devices (distributed.padding_index; the first
  train.num_seeds are the run's). Each stage draws its own streams.
  """
  t, k = config.train, config.eval.k
  seeds = t.num_seeds
  index = np.arange(seeds)  # the seeds trained: the run's, then padding
  if config.model.name == "ials":  # rows split over devices, not seeds
    init, run_epochs = dot_baselines.make_ials_train(config, data)
  else:
    # Seeds padded to the devices, as a sweep pads its points: 3 seeds on 2
    # devices train as 4, 2 on each, not 3 on one; the 4th repeats the 3rd
    # and is dropped from the records and params.npz. On 2 GPUs that is 2
    # seeds' time instead of 3; on the 2-core CPU, whose one device already
    # uses both cores, 0.78x to 1.10x (docs/results.md).
    index = distributed.padding_index(seeds)
    if len(index) > seeds:
      logging.info("train.num_seeds=%d: trained as %d, padded to the "
                   "devices; the padding is dropped", seeds, len(index))
    init, run_epochs = train.make_train(config, data,
                                        distributed.point_mesh(len(index)))
  root = jax.random.key(t.seed)
  if stage:  # each pretraining stage draws its own streams
    root = jax.random.fold_in(root, STAGES.index(stage))
  keys = jax.random.split(root, seeds)[index]
  states = init(keys) if init_params is None else init(keys, init_params)
  saver = None
  if config.checkpoint.keep:
    saver = checkpoints.Checkpointer(
        workdir, distributed.padded_name(stage or "train", seeds, len(index)),
        config.checkpoint.keep)

  full = ncf_eval.make_full_ranking(config, data)

  def advance(states, num_epochs):
    states, metrics = run_epochs(states, num_epochs)
    return states, dict(metrics, **(full(states.params) if full else {}))

  def record(done, metrics, seconds):
    metrics = {name: np.asarray(value)[:seeds]
               for name, value in metrics.items()}
    full_metrics = {name: value for name, value in metrics.items()
                    if name.startswith("full/")}
    return {"epoch": done, "seconds": seconds,
            **({"stage": stage} if stage else {}),
            "loss": results.summarize(metrics["loss"]),
            **{f"{name}@{k}": results.summarize(metrics[name])
               for name in ("hr", "ndcg") if name in metrics},
            **{name: results.summarize(metrics[name])
               for name in ("user_norm", "item_norm", "kernel_norm")
               if name in metrics},
            **_extra_metrics(metrics.get("rank"), full_metrics, config,
                             data)}

  judged_by = ncf_eval.selection(config, data)

  def describe(r, _):
    shown = [f"{name.upper()} {r[name]['mean']:.4f}±{r[name]['std']:.4f}"
             for name in judged_by]
    return "  ".join(shown + [f"loss {r['loss']['mean']:.4f}"])

  try:
    outcome = loop.train(
        states, advance, epochs=t.epochs, every=config.eval.every,
        record=record, label=f"[{stage}] " if stage else "", saver=saver,
        on_restore=lambda h: results.replace_metrics(workdir, stage, h),
        on_record=lambda r: results.append_metrics(workdir, r),
        describe=describe,
        hint=f" (model.dim={config.model.dim}, train.optimizer={t.optimizer}, "
             f"train.learning_rate={t.learning_rate}, train.reg={t.reg})")
  finally:
    if saver is not None:
      saver.close()
  return outcome.history, outcome.states
