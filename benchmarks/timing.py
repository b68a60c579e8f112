"""Timing of jitted training epochs, shared by the benchmark scripts."""

import time

import numpy as np


def time_epochs(data, config, spec) -> dict:
  """Times jitted epochs of train.make_epoch after one warm-up epoch.

  `spec` gives seed, num_seeds, epochs and min_seconds, and optionally
  point_loop (how the seeds run, train.POINT_LOOPS; default: the
  platform's, train.default_point_loop); `config` the model and its
  training (any model, any optimizer).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import models  # pylint: disable=g-import-not-at-top
  from dot_vs_learned import train  # pylint: disable=g-import-not-at-top
  num_train = data.train_users.shape[0]
  score = models.make_model(config, data.num_users, data.num_items)[1]
  epoch = train.make_epoch(config, data.num_items, num_train, score)
  hp = train.Hparams(jnp.float32(config.train.learning_rate),
                     jnp.float32(config.train.reg))

  def init(key):
    return train.init_state(key, config, data.num_users, data.num_items)

  seeds = spec["num_seeds"]
  keys = jax.random.split(jax.random.key(spec["seed"]), seeds)
  loop = spec.get("point_loop") or train.default_point_loop()
  if seeds == 1:  # one seed's plain epoch, with no seed axis
    state, run = jax.jit(init)(keys[0]), jax.jit(epoch, donate_argnums=0)
  else:
    state = jax.jit(jax.vmap(init))(keys)
    run = jax.jit((lambda states, *rest: jax.lax.map(
        lambda s: epoch(s, *rest), states)) if loop == "map" else
                  jax.vmap(epoch, in_axes=(0, None, None, None)),
                  donate_argnums=0)
  users, items = jnp.asarray(data.train_users), jnp.asarray(data.train_items)
  start = time.perf_counter()
  state, loss = jax.block_until_ready(run(state, users, items, hp))
  warmup = time.perf_counter() - start
  start, epochs, seconds = time.perf_counter(), 0, 0.0
  while epochs < spec["epochs"] or seconds < spec["min_seconds"]:
    state, loss = jax.block_until_ready(run(state, users, items, hp))
    epochs, seconds = epochs + 1, time.perf_counter() - start
  if not np.all(np.isfinite(np.asarray(loss))):
    raise FloatingPointError(f"{config.model.name} {config.train.optimizer} "
                             f"d={config.model.dim}: loss {loss}")
  stats = jax.devices()[0].memory_stats() or {}
  return {"examples": num_train * (1 + config.train.num_negatives) *
                      epochs * seeds,
          "seconds": seconds, "warmup": warmup,
          "device_mib": stats.get("peak_bytes_in_use", float("nan")) / 2**20}
