"""Learning a dot product with an MLP (paper §4, Figure 3), as a resumable grid.

Data of one cell (d, M) and seed: synthetic_data.py; the config and its
validation: synthetic_config.py.
Model: an MLP on [p, q] with ReLU layers [4h, 2h, h] (h = multiplier * d / 2)
and a linear output, MSE loss, Adam. The seeds of a cell (each with its own
data and initialization) train as one jitted program, vmapped over seeds,
one call per epoch.
"""

import time
from typing import NamedTuple, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from dot_vs_learned import checkpoints
from dot_vs_learned import loop
from dot_vs_learned import report_synthetic
from dot_vs_learned import results
from dot_vs_learned import stream
from dot_vs_learned import sweep
from dot_vs_learned import synthetic_config
from dot_vs_learned import synthetic_data
from dot_vs_learned import workdir as workdir_lib


# configs/synthetic.py's defaults; fields and validation: synthetic_config.py.
default_config = synthetic_config.default_config


class DotMLP(nn.Module):
  """[p, q] -> ReLU layers `hidden` -> a linear output (Keras' default init)."""
  hidden: Sequence[int]

  @nn.compact
  def __call__(self, p, q):
    init = nn.initializers.glorot_uniform()
    x = jnp.concatenate([p, q], axis=-1)
    for size in self.hidden:
      x = nn.relu(nn.Dense(size, kernel_init=init)(x))
    return nn.Dense(1, kernel_init=init)(x)[..., 0]


def hidden_sizes(dim, multiplier) -> tuple[int, int, int]:
  """[4h, 2h, h] with h = multiplier * d / 2 (whole: synthetic_config)."""
  h = int(multiplier * dim // 2)
  return (4 * h, 2 * h, h)


class State(NamedTuple):
  params: dict
  opt_state: tuple
  key: jax.Array


def make_cell_programs(dim, multiplier, num_train, c):
  """init(key, data), epoch(state, data) and evaluate(params, data) of one
  seed; vmap them over seeds."""
  module = DotMLP(hidden_sizes(dim, multiplier))
  optimizer = optax.adam(c.learning_rate)
  size = c.batch_size
  num_steps = -(-num_train // size)

  def init(key):
    init_key, key = jax.random.split(key)
    x = jnp.zeros((1, dim))
    params = module.init(init_key, x, x)
    return State(params, optimizer.init(params), key)

  def epoch(state, data):
    key, perm_key = jax.random.split(state.key)
    round_keys = jax.random.bits(perm_key, (4,), jnp.uint32)
    # Shuffle once per epoch (a keyed Feistel permutation, stream.py), padded
    # to whole batches; the steps then read contiguous slices.
    positions = jnp.arange(num_steps * size, dtype=jnp.int32)
    valid = positions < num_train
    rows = stream.permute(jnp.where(valid, positions, 0), round_keys,
                          num_train)
    xs = (data.train[rows].reshape(num_steps, size, 2),
          data.train_labels[rows].reshape(num_steps, size),
          valid.astype(jnp.float32).reshape(num_steps, size))

    def body(carry, batch):
      params, opt_state = carry
      pairs, labels, weights = batch
      p, q = data.user[pairs[:, 0]], data.item[pairs[:, 1]]

      def loss_fn(params):
        error = module.apply(params, p, q) - labels
        return jnp.sum(weights * error**2) / jnp.sum(weights)

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), (
          loss * jnp.sum(weights))

    (params, opt_state), losses = jax.lax.scan(
        body, (state.params, state.opt_state), xs)
    return State(params, opt_state, key), jnp.sum(losses) / num_train

  def evaluate(params, data):
    """RMSE of the MLP, the dot product and zero, on test and fresh."""
    def rmse_terms(p_of, q_of, labels):
      n = labels.shape[0]
      chunk = min(c.eval_chunk, n)
      starts = jnp.arange(0, n, chunk, dtype=jnp.int32)

      def one(start):
        rows = start + jnp.arange(chunk, dtype=jnp.int32)
        valid = rows < n
        rows = jnp.where(valid, rows, 0)
        p, q, y = p_of(rows), q_of(rows), labels[rows]
        mlp, dot = module.apply(params, p, q), jnp.sum(p * q, axis=-1)
        w = valid.astype(jnp.float32)
        return jnp.stack([jnp.sum(w * (mlp - y)**2), jnp.sum(w * (dot - y)**2),
                          jnp.sum(w * y**2)])

      return jnp.sqrt(jnp.sum(jax.lax.map(one, starts), axis=0) / n)

    test = rmse_terms(lambda r: data.user[data.test[r, 0]],
                      lambda r: data.item[data.test[r, 1]], data.test_labels)
    fresh = rmse_terms(lambda r: data.fresh_user[r],
                       lambda r: data.fresh_item[r], data.fresh_labels)
    names = ("mlp", "dot", "zero")
    return {**{f"{m}_test": test[j] for j, m in enumerate(names)},
            **{f"{m}_fresh": fresh[j] for j, m in enumerate(names)}}

  return init, epoch, evaluate


def train_cell(num_users, dim, multiplier, c, log_prefix="", saver=None,
               every=0):
  """Trains and evaluates all seeds of a cell; returns its record.

  saver (checkpoints.Checkpointer): the states are saved every `every`
  epochs and after the last, and a cell killed midway resumes from the
  latest, to the same record (bit-identical on CPU) but for timings.
  """
  start = time.time()
  data = jax.device_put(synthetic_data.stack_seeds(num_users, dim, c))
  generate_s = time.time() - start
  num_train = data.train.shape[1]
  init, epoch, evaluate = make_cell_programs(dim, multiplier, num_train, c)
  seeds = data.user.shape[0]
  keys = jax.random.split(jax.random.key(c.seed), seeds)
  run_epoch = jax.jit(jax.vmap(epoch), donate_argnums=0)

  def advance(states, num_epochs):
    for _ in range(num_epochs):
      states, loss = run_epoch(states, data)
    return states, {"loss": loss}

  outcome = loop.train(
      jax.jit(jax.vmap(init))(keys), advance, epochs=c.epochs, every=1,
      record=lambda done, m, _: {"epoch": done,
                                 "loss": np.asarray(m["loss"]).tolist()},
      label=log_prefix, saver=saver, save_every=every or None,
      describe=lambda r, _: f"train MSE {np.mean(r['loss']):.4f}")
  metrics = jax.device_get(jax.jit(jax.vmap(evaluate))(outcome.states.params,
                                                       data))
  summary = {name: results.summarize(values)
             for name, values in metrics.items()}
  for split in ("test", "fresh"):
    summary[f"error_{split}"] = results.summarize(
        np.asarray(metrics[f"mlp_{split}"]) - metrics[f"dot_{split}"])
  return {"d": dim, "num_users": num_users, "multiplier": multiplier,
          "hidden": list(hidden_sizes(dim, multiplier)), "seeds": seeds,
          "epochs": c.epochs, "num_train": int(num_train),
          "train_mse": results.summarize(outcome.history[-1]["loss"]),
          **summary, "generate_s": generate_s, "train_s": outcome.seconds,
          "samples_per_s": seeds * num_train * c.epochs / outcome.seconds}


def cell_name(dim, num_users, multiplier) -> str:
  return f"d={dim},M={num_users},multiplier={multiplier}"


def run(config, workdir, overwrite=False) -> dict:
  """Runs (or resumes) the grid of `config` in `workdir`."""
  synthetic_config.validate(config)
  synthetic_config.validate_sizes(config)
  with workdir_lib.use(
      workdir, config.to_dict(), overwrite,
      outputs=(sweep.CELLS, "synthetic.md", "synthetic.png")) as path:
    return _run(config, path)


def _run(config, workdir) -> dict:
  """Trains the cells not yet recorded, then writes the table and Figure 3."""
  c = config.synthetic
  done = sweep.done_cells(workdir)
  cells = [(d, m, mult) for mult in c.multipliers for d in c.dims
           for m in c.nums_users]
  logging.info("synthetic grid: %d cells, %d already recorded", len(cells),
               sum(cell_name(*cell) in done for cell in cells))
  for index, (dim, num_users, multiplier) in enumerate(cells):
    name = cell_name(dim, num_users, multiplier)
    if name in done:
      continue
    prefix = f"[{index + 1}/{len(cells)} {name}] "
    saver = None
    folder = f"synthetic_d{dim}_M{num_users}_x{multiplier}"
    if config.checkpoint.every:
      saver = checkpoints.Checkpointer(workdir, folder, config.checkpoint.keep)
    try:
      record = train_cell(num_users, dim, multiplier, c, prefix, saver,
                          config.checkpoint.every)
    except FloatingPointError as e:  # this cell fails, the grid goes on
      logging.error("%s", e)
      record = {"d": dim, "num_users": num_users, "multiplier": multiplier,
                "error": str(e)}
    finally:
      if saver:
        saver.close()
    record["cell"] = name
    sweep.record_cell(workdir, record)
    checkpoints.remove(workdir, folder)  # the recorded cell replaces them
    done[name] = record
    if "error" not in record:
      logging.info("%sRMSE test: MLP %.4f dot %.4f zero %.4f; fresh: MLP "
                   "%.4f; error test %.4f fresh %.4f; %.0f samples/s", prefix,
                   record["mlp_test"]["mean"], record["dot_test"]["mean"],
                   record["zero_test"]["mean"], record["mlp_fresh"]["mean"],
                   record["error_test"]["mean"],
                   record["error_fresh"]["mean"], record["samples_per_s"])
  records = [done[cell_name(*cell)] for cell in cells]
  table = report_synthetic.table(records)
  results.write_atomically(workdir / "synthetic.md", lambda f: f.write(table))
  report_synthetic.figure3(records, workdir / "synthetic.png")
  final = {"experiment": "synthetic", "device": str(jax.devices()[0]),
           "cells": records,
           "failed": [r["cell"] for r in records if "error" in r]}
  results.write_json(workdir / results.RESULTS, final)
  return final


def full_grid_estimate(config, samples_per_s) -> float:
  """Seconds the config's grid takes at the given samples/s per cell shape
  {(d, multiplier): samples/s of all seeds together}."""
  c = config.synthetic
  seconds = 0.0
  for mult in c.multipliers:
    for dim in c.dims:
      for m in c.nums_users:
        samples = c.num_seeds * round(c.train_fraction * c.pairs_per_user * m)
        seconds += samples * c.epochs / samples_per_s[(dim, mult)]
  return seconds

