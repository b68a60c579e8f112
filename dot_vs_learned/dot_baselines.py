"""iALS, EASE^R and popularity behind the NCF driver (ncf.py): the same
evaluations, workdir, checkpoints, params.npz and recommend as MF.

iALS trains in epochs, as MF does: make_ials_train keeps the contract of
train.make_train (init(keys, params=None, stddevs=None) -> states;
run(states, n, hps=None) -> (states, metrics)), so the driver's loop,
checkpoints and records serve it unchanged. A point's hyperparameters are
ials_solve.Hparams(lambda, alpha0, nu): train.reg, ials.alpha0 and
ials.nu. It runs on one device: ials.py can split rows over a mesh, but two
XLA:CPU devices solving at once deadlocked (see ials_solve.solve_side), and
no accelerator has run it yet.

EASE^R has no epochs and no randomness: fit_ease solves B once for lambda =
train.reg (one "seed", whatever train.num_seeds); ease_grid scores a grid
of lambdas from one eigendecomposition, for the tuning sweep. Catalogues
too large for that (Gowalla's 41k items on a 24 GB CPU: ease_in_place)
solve B in G's own buffer, one lambda at a time.

Popularity ranks items by their training count (popularity_metrics).
"""

import functools
import gc
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import checks
from dot_vs_learned import ease
from dot_vs_learned import evaluate
from dot_vs_learned import ials
from dot_vs_learned import ials_solve
from dot_vs_learned import models
from dot_vs_learned import ncf_eval
from dot_vs_learned import results


def _test_arrays(data):
  """evaluate.test_arrays as arrays: () for item lists."""
  return tuple(map(jnp.asarray, evaluate.test_arrays(data)))


def ials_hparams(config, count) -> ials_solve.Hparams:
  """The config's lambda, alpha0 and nu, repeated for `count` points."""
  def full(value):
    return jnp.full((count,), value, jnp.float32)
  return ials_solve.Hparams(full(config.train.reg),
                            full(config.ials.alpha0), full(config.ials.nu))


def _norms(params: models.DotParams) -> dict:
  """Mean L2 norm of the user and item factor rows."""
  return {"user_norm": jnp.mean(jnp.linalg.norm(params.user, axis=-1)),
          "item_norm": jnp.mean(jnp.linalg.norm(params.item, axis=-1))}


def make_ials_train(config, data):
  """train.make_train for iALS: (init, run) over a leading point axis."""
  t, k, dim = config.train, config.eval.k, config.model.dim
  model = ials.make_ials(data.num_users, data.num_items, data.train_users,
                         data.train_items, dim, t.reg, config.ials.alpha0,
                         config.ials.nu, t.init_stddev,
                         solver=config.ials.solver,
                         cg_steps=config.ials.cg_steps)
  arrays = (model.data, *_test_arrays(data))

  def run_one(state, hp, arrays, num_epochs):
    ials_data, *test = arrays
    state, losses = jax.lax.scan(
        lambda s, _: model.epoch(s, ials_data, hp), state, None,
        length=num_epochs)
    metrics = evaluate.metrics_of(ials.score, state.params, test, k)
    return state, dict(metrics, loss=losses[-1], **_norms(state.params))

  @functools.partial(jax.jit, static_argnums=(3,), donate_argnums=(0,))
  def run_all(states, hps, arrays, num_epochs):
    return jax.vmap(run_one, in_axes=(0, 0, None, None))(states, hps, arrays,
                                                         num_epochs)

  init_all = jax.jit(jax.vmap(lambda key, stddev: ials.init(
      key, data.num_users, data.num_items, dim, stddev)))

  def init(keys, params=None, stddevs=None):
    if params is not None:
      raise ValueError("iALS starts from its own random factors")
    if stddevs is None:
      stddevs = np.full((keys.shape[0],), t.init_stddev, np.float32)
    return init_all(keys, jnp.asarray(stddevs, jnp.float32))

  def run(states, num_epochs, hps=None):
    count = jax.tree.leaves(states)[0].shape[0]
    hps = ials_hparams(config, count) if hps is None else hps
    return run_all(states, hps, arrays, num_epochs)

  return init, run


def _history(data, seed_axis=False) -> jax.Array:
  """X [U, I], or [1, U, I] with seed_axis (added in numpy: a JAX x[None]
  would copy it)."""
  x = ease.history_matrix(data.train_users, data.train_items, data.num_users,
                          data.num_items)
  return ease.on_device(x[None] if seed_axis else x)


def _gram(data) -> jax.Array:
  return ease.gram(data.train_users, data.train_items, data.num_users,
                   data.num_items)


@functools.partial(jax.jit, static_argnames="k")
def _sampled(params_1, arrays, k):
  """Sampled metrics of EaseParams with a seed axis of 1 (dropped inside
  the program, where it costs no copy)."""
  params = jax.tree.map(lambda x: x[0], params_1)
  return evaluate.metrics_of(ease.score, params, arrays, k)


def ease_in_place(data, grid=False) -> bool:
  """Whether B must be solved in G's own buffer (ease.fit_in_place): when
  JAX's fit would take more than 90% of the device's memory. One fit holds
  about 4 I^2 floats with X (ease.py); a lambda grid's one
  eigendecomposition (grid=True) about 6 I^2 (G, Q, eigh's workspace, P
  and B), so a grid that cannot have it fits each lambda in place."""
  need = 4 * ((6 if grid else 4) * data.num_items**2
              + data.num_users * data.num_items)
  return need > 0.9 * checks.available_bytes()


def _ease_weights(data, reg, seed_axis=False) -> tuple[jax.Array, jax.Array]:
  """(B^T, diag(P)) at lambda `reg` ([1, I, I] and [1, I] with seed_axis),
  by the path ease_in_place chooses."""
  if not ease_in_place(data):
    weights, diag = ease.fit(_gram(data), jnp.float32(reg))
    return (weights[None], diag[None]) if seed_axis else (weights, diag)
  # The previous lambda's B^T is freed only by the cycle collector: in one
  # process fitting Gowalla's lambdas in turn, RSS during the third fit was
  # 18.4 GB, G and X being 11.6; at 8,000 items, RSS before each new G
  # stayed one B^T higher without this collect (0.64-0.70 GB, not 0.39).
  gc.collect()
  start = time.time()
  logging.info("EASE^R at lambda %g: solving B of %d items in place (LAPACK, "
               "one thread, one %.1f GB array)", reg, data.num_items,
               4 * data.num_items**2 / 1e9)
  weights, diag = ease.fit_in_place(ease.gram_numpy(
      data.train_users, data.train_items, data.num_users, data.num_items),
                                    reg)
  logging.info("EASE^R at lambda %g: B of %d items solved in place (LAPACK) "
               "in %.0f s", reg, data.num_items, time.time() - start)
  if seed_axis:
    return ease.on_device(weights[None]), jnp.asarray(diag[None])
  return ease.on_device(weights), jnp.asarray(diag)


def fit_ease(config, data):
  """EASE^R at lambda = train.reg: (params with a point axis of 1, sampled
  metrics {"hr", "ndcg": float, "rank": [U]}; {} for item lists)."""
  weights, diag = _ease_weights(data, config.train.reg, seed_axis=True)
  params = models.EaseParams(weights, _history(data, seed_axis=True), diag)
  metrics = _sampled(params, _test_arrays(data), k=config.eval.k)
  out = {name: np.asarray(value) if name == "rank" else float(value)
         for name, value in metrics.items()}
  return params, out


def ease_grid(regs, data, config, done_path=None) -> dict[str, np.ndarray]:
  """Metrics of EASE^R for each lambda in `regs` (a leading axis [L]), in
  one program: the sampled {"hr", "ndcg", "rank"}, or for item lists the
  full ranking's {"full/recall@K", ...} (ncf_eval.full_ranking_fn).
  In place (ease_in_place), one fit per lambda: with `done_path`, each
  lambda's metrics are appended there as it finishes and read back by a
  rerun, which fits only the others."""
  if evaluate.has_negatives(data):
    evaluate_fn = functools.partial(evaluate.metrics_of, ease.score,
                                    arrays=_test_arrays(data),
                                    k=config.eval.k)
  else:
    evaluate_fn = ncf_eval.full_ranking_fn(config, data)
  if ease_in_place(data, grid=True):  # one fit per lambda
    done = {} if done_path is None else {
        r["reg"]: r["metrics"] for r in results.read_json_lines(done_path)}
    history, per_reg = _history(data), []
    evaluate_one = jax.jit(evaluate_fn)
    for reg in map(float, regs):
      if reg not in done:
        weights, diag = _ease_weights(data, reg)
        metrics = evaluate_one(models.EaseParams(weights, history, diag))
        del weights, diag  # B^T (I x I) must not live into the next fit
        done[reg] = {name: np.asarray(v).tolist()
                     for name, v in metrics.items()}
        logging.info("EASE^R at lambda %g: %s", reg,
                     {name: round(v, 4) for name, v in done[reg].items()
                      if np.ndim(v) == 0})
        if done_path is not None:
          results.append_json_line(done_path, {"reg": reg,
                                               "metrics": done[reg]})
      per_reg.append(done[reg])
    return {name: np.stack([np.asarray(m[name]) for m in per_reg])
            for name in per_reg[0]}
  metrics = ease.grid_evaluate(_gram(data), jnp.asarray(regs, jnp.float32),
                               _history(data), evaluate_fn)
  return {name: np.asarray(value) for name, value in metrics.items()}


def popularity_metrics(data, k) -> dict:
  """HR@k and NDCG@k (floats) of ranking items by their training count, and
  the sampled ranks."""
  counts = jnp.asarray(models.popularity_counts(data.train_items,
                                                data.num_items))
  mask = evaluate.candidate_mask(data.test_items, data.test_negatives)
  metrics = evaluate.sampled_metrics(models.popularity_score, counts,
                                     jnp.asarray(data.test_items),
                                     jnp.asarray(data.test_negatives),
                                     jnp.asarray(mask), k)
  return {name: np.asarray(value) if name == "rank" else float(value)
          for name, value in metrics.items()}
