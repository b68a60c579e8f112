"""iALS and EASE^R behind the NCF driver (ncf.py): the same evaluations,
workdir, checkpoints, params.npz and recommend as MF.

iALS trains in epochs, as MF does: make_ials_train keeps the contract of
train.make_train (init(keys, params=None, stddevs=None) -> states;
run(states, n, hps=None) -> (states, metrics)), so the driver's loop,
checkpoints and records serve it unchanged. A point's hyperparameters are
ials.Hparams(lambda, alpha0, nu): train.reg, ials.alpha0 and ials.nu. It
runs on one device: ials.py can split rows over a mesh, but two XLA:CPU
devices solving at once deadlocked (see ials.solve_side), and no
accelerator has run it yet.

EASE^R has no epochs and no randomness: fit_ease solves B once for lambda =
train.reg (one "seed", whatever train.num_seeds); ease_grid scores a grid
of lambdas from one eigendecomposition, for the tuning sweep.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import ease
from dot_vs_learned import evaluate
from dot_vs_learned import ials
from dot_vs_learned import models
from dot_vs_learned import ncf_eval


def _test_arrays(data):
  """evaluate.test_arrays as arrays: () for item lists."""
  return tuple(map(jnp.asarray, evaluate.test_arrays(data)))


def ials_hparams(config, count) -> ials.Hparams:
  """The config's lambda, alpha0 and nu, repeated for `count` points."""
  def full(value):
    return jnp.full((count,), value, jnp.float32)
  return ials.Hparams(full(config.train.reg), full(config.ials.alpha0),
                      full(config.ials.nu))


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


def _history(data) -> jax.Array:
  return jnp.asarray(ease.history_matrix(data.train_users, data.train_items,
                                         data.num_users, data.num_items))


def _gram(data) -> jax.Array:
  return ease.gram(data.train_users, data.train_items, data.num_users,
                   data.num_items)


@functools.partial(jax.jit, static_argnames="k")
def _sampled(params, arrays, k):
  return evaluate.metrics_of(ease.score, params, arrays, k)


def fit_ease(config, data):
  """EASE^R at lambda = train.reg: (params with a point axis of 1, sampled
  metrics {"hr", "ndcg": float, "rank": [U]}; {} for item lists)."""
  params = models.EaseParams(ease.fit(_gram(data),
                                      jnp.float32(config.train.reg)),
                             _history(data))
  metrics = _sampled(params, _test_arrays(data), k=config.eval.k)
  out = {name: np.asarray(value) if name == "rank" else float(value)
         for name, value in metrics.items()}
  return jax.tree.map(lambda x: x[None], params), out


def ease_grid(regs, data, config) -> dict[str, np.ndarray]:
  """Metrics of EASE^R for each lambda in `regs` (a leading axis [L]), in
  one program: the sampled {"hr", "ndcg", "rank"}, or for item lists the
  full ranking's {"full/recall@K", ...} (ncf_eval.full_ranking_fn)."""
  if evaluate.has_negatives(data):
    evaluate_fn = functools.partial(evaluate.metrics_of, ease.score,
                                    arrays=_test_arrays(data),
                                    k=config.eval.k)
  else:
    evaluate_fn = ncf_eval.full_ranking_fn(config, data)
  metrics = ease.grid_evaluate(_gram(data), jnp.asarray(regs, jnp.float32),
                               _history(data), evaluate_fn)
  return {name: np.asarray(value) for name, value in metrics.items()}
