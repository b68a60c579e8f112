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
from dot_vs_learned import checks
from dot_vs_learned import datasets
from dot_vs_learned import distributed
from dot_vs_learned import models
from dot_vs_learned import results
from dot_vs_learned import train

MODELS = ("mf", "gmf", "mlp", "neumf", "neumf_pretrained", "popularity")
OPTIMIZERS = ("exact", "batched", "adam", "sgd")
GRADIENT_OPTIMIZERS = ("adam", "sgd")  # those that train any model
STAGES = ("gmf", "mlp", "neumf")  # of neumf_pretrained


ConfigError = checks.ConfigError
_check = checks.check


def validate(config, num_candidates=None) -> None:
  """Raises ConfigError naming the first config field out of range."""
  m, t, e = config.model, config.train, config.eval
  _check(m.name in MODELS, "model.name", m.name, f"must be one of {MODELS}")
  _check(t.optimizer in OPTIMIZERS, "train.optimizer", t.optimizer,
         f"must be one of {OPTIMIZERS}")
  # d counts the bias (Eq. 2), so one factor needs d = 2.
  _check(m.dim >= 2, "model.dim", m.dim, "must be >= 2 (bias + factors)")
  _check(m.name in ("mf", "popularity") or t.optimizer in GRADIENT_OPTIMIZERS,
         "train.optimizer", t.optimizer, f"{m.name} trains with "
         f"{GRADIENT_OPTIMIZERS} only (use --config=configs/<dataset>.py:"
         f"{m.name} for its recipe)")
  if m.name == "mlp" and not m.hidden:
    _check(m.dim % 2 == 0, "model.dim", m.dim, "mlp: must be even (d = 2k)")
  if m.name in ("neumf", "neumf_pretrained"):
    _check(m.dim % 3 == 0, "model.dim", m.dim,
           "neumf: must be a multiple of 3 (GMF k + MLP 2k, d = 3k)")
  _check(all(h >= 1 for h in m.hidden), "model.hidden", m.hidden,
         "layer sizes must be >= 1")
  _check(t.l2_weights >= 0, "train.l2_weights", t.l2_weights, "must be >= 0")
  p = config.pretrain
  _check(p.finetune_optimizer in GRADIENT_OPTIMIZERS,
         "pretrain.finetune_optimizer", p.finetune_optimizer,
         f"must be one of {GRADIENT_OPTIMIZERS}")
  _check(p.epochs >= 1, "pretrain.epochs", p.epochs, "must be >= 1")
  _check(0 <= p.alpha <= 1, "pretrain.alpha", p.alpha, "must be in [0, 1]")
  _check(p.finetune_learning_rate > 0, "pretrain.finetune_learning_rate",
         p.finetune_learning_rate, "must be > 0")
  _check(t.learning_rate > 0, "train.learning_rate", t.learning_rate, "> 0")
  _check(t.reg >= 0, "train.reg", t.reg, "must be >= 0")
  _check(t.init_stddev > 0, "train.init_stddev", t.init_stddev, "must be > 0")
  for field in ("num_negatives", "epochs", "batch_size", "window",
                "num_seeds"):
    value = t[field]
    _check(value >= 1, f"train.{field}", value, "must be >= 1")
  _check(e.every >= 1, "eval.every", e.every, "must be >= 1")
  _check(config.checkpoint.keep >= 0, "checkpoint.keep",
         config.checkpoint.keep, "must be >= 0")
  _check(e.k >= 1, "eval.k", e.k, "must be >= 1")
  if num_candidates is not None:
    _check(e.k <= num_candidates, "eval.k", e.k,
           f"must be <= the {num_candidates} ranked candidates per user")


def predictive_factor(model_config):
  """NCF's "predictive factor" k of a model of embedding dimension d.

  Paper App. A.3: d = 2k for the 3-layer MLP and d = 3k for NeuMF; for GMF k
  is d; MF and popularity have none.
  """
  divisor = {"gmf": 1, "mlp": 2, "neumf": 3, "neumf_pretrained": 3}
  if model_config.name not in divisor or (
      model_config.name == "mlp" and model_config.hidden):
    return None
  return model_config.dim // divisor[model_config.name]



def _format_eta(seconds) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else (
      f"{minutes}m{seconds:02d}s")


def run(config, workdir, overwrite=False) -> dict:
  """Runs the experiment of `config` into `workdir`; returns results.json."""
  validate(config)
  results.check_unfinished(workdir, overwrite)
  # Bad data or config values fail here, before anything is written.
  data = datasets.load_dataset(config.data)
  validate(config, 1 + data.test_negatives.shape[1])
  workdir = results.prepare(workdir, config.to_dict(), overwrite)
  logging.info("dataset %s: %d users, %d items, %d training pairs, %d "
               "negatives per user", data.name, data.num_users, data.num_items,
               data.train_users.shape[0], data.test_negatives.shape[1])
  try:
    return _run(config, data, workdir)
  except Exception as e:
    results.mark_failed(workdir, e)
    raise


def _run(config, data, workdir) -> dict:
  """Trains and evaluates into a prepared workdir."""
  k = config.eval.k
  start = time.time()
  if config.model.name == "popularity":
    metrics = train.popularity_metrics(data, k)
    summary = {"epoch": 0, **{f"{name}@{k}": results.summarize([value])
                              for name, value in metrics.items()}}
    results.append_metrics(workdir, summary)
    best = None
  else:
    train_fn = (_train_pretrained_neumf if config.model.name ==
                "neumf_pretrained" else _train)
    summary, best, states = train_fn(config, data, workdir, start)
    results.save_params(workdir, models.flatten_params(
        distributed.fetch(states.params)))
  final = {"model": config.model.name, "dataset": data.name,
           "dim": config.model.dim, "num_seeds": config.train.num_seeds,
           "ncf_predictive_factor": predictive_factor(config.model),
           "final": summary, "seconds": time.time() - start,
           "best_on_test_set_not_for_reporting": best}
  results.write_json(workdir / results.RESULTS, final)
  factor = final["ncf_predictive_factor"]
  logging.info("final (epoch %d) %s d=%d%s: %s", summary["epoch"],
               config.model.name, config.model.dim,
               "" if factor is None else f" (NCF predictive factor {factor})",
               {name: round(value["mean"], 4)
                for name, value in summary.items() if isinstance(value, dict)})
  return final


def _stage_configs(config):
  """GMF (d = k), MLP (2k) and NeuMF (3k) configs of NCF §3.4.1."""
  k, p = config.model.dim // 3, config.pretrain
  gmf, mlp, neumf = (copy.deepcopy(config) for _ in range(3))
  gmf.model.update(name="gmf", dim=k)
  mlp.model.update(name="mlp", dim=2 * k,
                   hidden=tuple(config.model.hidden) or (4 * k, 2 * k, k))
  for stage in (gmf, mlp):
    stage.train.epochs = p.epochs
  neumf.model.name = "neumf"
  neumf.train.update(optimizer=p.finetune_optimizer,
                     learning_rate=p.finetune_learning_rate)
  return gmf, mlp, neumf


def _train_pretrained_neumf(config, data, workdir, start):
  """NCF §3.4.1: train GMF and MLP, initialize NeuMF from them, fine-tune."""
  gmf, mlp, neumf = _stage_configs(config)
  _, _, gmf_states = _train(gmf, data, workdir, start, stage="gmf")
  _, _, mlp_states = _train(mlp, data, workdir, start, stage="mlp")
  params = jax.vmap(functools.partial(models.neumf_from_pretrained,
                                      alpha=config.pretrain.alpha))(
                                          gmf_states.params, mlp_states.params)
  return _train(neumf, data, workdir, start, stage="neumf",
                init_params=params)


def _train(config, data, workdir, start, stage="", init_params=None):
  """Trains all seeds together, evaluating every `eval.every` epochs.

  Returns the last evaluation, the best one on the test set (not for
  reporting) and the final states. Each stage draws its own streams.
  """
  t, k = config.train, config.eval.k
  init, run_epochs = train.make_train(config, data,
                                      train.point_mesh(t.num_seeds))
  root = jax.random.key(t.seed)
  if stage:  # each pretraining stage draws its own streams
    root = jax.random.fold_in(root, STAGES.index(stage))
  keys = jax.random.split(root, t.num_seeds)
  states = init(keys) if init_params is None else init(keys, init_params)
  done, best, summary = 0, None, None
  saver = None
  if config.checkpoint.keep:
    saver = checkpoints.Checkpointer(workdir, stage or "train",
                                     config.checkpoint.keep)
    restored = saver.restore_latest(states)
    if restored is not None:
      states, meta = restored
      done, best, summary = meta["done"], meta["best"], meta["last"]
      logging.info("%sresuming from the checkpoint at epoch %d",
                   f"[{stage}] " if stage else "", done)
  results.drop_metrics_after(workdir, stage, done)
  train_start, done_at_start = time.time(), done
  while done < t.epochs:
    chunk = min(config.eval.every, t.epochs - done)
    states, metrics = run_epochs(states, chunk)
    metrics = distributed.fetch(metrics)
    done += chunk
    loss = np.asarray(metrics["loss"])
    if not np.all(np.isfinite(loss)):
      raise FloatingPointError(
          f"training diverged by epoch {done}: loss per seed {loss.tolist()} "
          f"(model.dim={config.model.dim}, train.optimizer={t.optimizer}, "
          f"train.learning_rate={t.learning_rate}, train.reg={t.reg})")
    summary = {"epoch": done, "seconds": time.time() - start,
               **({"stage": stage} if stage else {}),
               "loss": results.summarize(loss),
               f"hr@{k}": results.summarize(metrics["hr"]),
               f"ndcg@{k}": results.summarize(metrics["ndcg"]),
               **{name: results.summarize(metrics[name])
                  for name in ("user_norm", "item_norm", "kernel_norm")}}
    results.append_metrics(workdir, summary)
    if best is None or summary[f"hr@{k}"]["mean"] > best[f"hr@{k}"]["mean"]:
      best = summary
    if saver is not None:
      saver.save(done, states, {"done": done, "best": best, "last": summary})
    per_epoch = (time.time() - train_start) / (done - done_at_start)
    hr, ndcg = summary[f"hr@{k}"], summary[f"ndcg@{k}"]
    logging.info(
        "%sepoch %d/%d  HR@%d %.4f±%.4f  NDCG@%d %.4f±%.4f  loss %.4f  "
        "%.2f s/epoch  ETA %s", f"[{stage}] " if stage else "", done,
        t.epochs, k, hr["mean"], hr["std"], k, ndcg["mean"], ndcg["std"],
        summary["loss"]["mean"], per_epoch,
        _format_eta(per_epoch * (t.epochs - done)))
  if saver is not None:
    saver.close()
  return summary, best, states


def default_config():
  """The fields of every NCF config; configs/*.py override what differs."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict()
  config.experiment = "ncf"
  config.data = ml_collections.ConfigDict(dict(
      name="default",  # "default" (generated, embedded), "ml-1m", "pinterest-20".
      dir="",  # folder with {name}.train.rating etc.; "" = download cache.
      cache_dir="",  # "" = $DOT_VS_LEARNED_CACHE or ~/.cache/dot_vs_learned.
      download=True,  # fetch missing NCF files (pinned checksums).
      seed=0,  # generator seed of the "default" data.
      num_users=2000,  # size of the "default" data.
      num_items=1000,
  ))
  config.model = ml_collections.ConfigDict(dict(
      name="mf",  # "mf" (Eq. 2), "gmf" (Eq. 7), "mlp", "neumf", "popularity".
      dim=64,  # embedding dimension d per side; MF counts its bias in d.
      hidden=(),  # MLP layer sizes; () = NCF's [4k, 2k, k] for d = 2k (3k).
  ))
  config.train = ml_collections.ConfigDict(dict(
      optimizer="batched",  # MF SGD: "exact" or "batched" (sum); or "adam".
      learning_rate=0.002,  # eta; App. A.2: 0.002 for MovieLens.
      reg=0.005,  # lambda: L2 on used embedding rows; App. A.2: 0.005.
      l2_weights=0.0,  # adam: L2 on layer kernels (NCF default 0).
      num_negatives=8,  # m negatives per positive; App. A.2: 8 for MovieLens.
      epochs=256,  # App. A.2: 256.
      init_stddev=0.1,  # sigma of the N(0, sigma^2) init; App. A.2: 0.1.
      batch_size=1024,  # examples per step of `batched`.
      window=64,  # examples per conflict-free wave window of `exact`.
      seed=0,  # root seed; seed i trains with split(key(seed), n)[i].
      num_seeds=1,  # seeds trained together (vmapped); App. A.2 reports 8.
  ))
  config.pretrain = ml_collections.ConfigDict(dict(  # neumf_pretrained only
      epochs=20,  # epochs of each of the GMF and MLP stages (NCF: 20).
      alpha=0.5,  # NCF §3.4.1: weight of GMF in the joined output layer.
      finetune_optimizer="sgd",  # NCF §3.4.1: vanilla SGD for fine-tuning.
      finetune_learning_rate=0.001,  # NCF code's default learning rate.
  ))
  config.eval = ml_collections.ConfigDict(dict(
      every=16,  # evaluate every N epochs (the last epoch always).
      k=10,  # cut-off of HR@K and NDCG@K; NCF §4.1: 10.
  ))
  config.checkpoint = ml_collections.ConfigDict(dict(
      keep=2,  # checkpoints kept, one per evaluation; 0: none (no resume)
  ))
  return config


def use_ncf_recipe(config, model_name) -> None:
  """Switches `config` to NCF's recipe for a learned model (He et al. 2017).

  Adam with learning rate 0.001, batches of 256, 4 negatives per positive,
  embeddings from N(0, 0.01^2), 20 epochs, no L2 (the defaults of NCF's
  code). d = 64 for GMF and MLP (predictive factor 32), 63 for NeuMF (the
  multiple of 3 nearest 64: predictive factor 21). The pretrained NeuMF
  trains its GMF and MLP stages with that recipe, then fine-tunes by SGD.
  """
  config.model.name = model_name
  config.model.dim = 63 if model_name.startswith("neumf") else 64
  config.train.update(optimizer="adam", learning_rate=0.001, batch_size=256,
                      num_negatives=4, init_stddev=0.01, epochs=20, reg=0.0,
                      l2_weights=0.0)
  config.eval.every = 1
