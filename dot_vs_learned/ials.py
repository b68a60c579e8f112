"""iALS: implicit alternating least squares; its loss, epochs and builder.

Hu, Koren and Volinsky (ICDM 2008) with the loss and frequency-scaled L2 of
Rendle, Krichene, Zhang and Koren, "Revisiting the Performance of iALS on
Item Recommendation Benchmarks" (RecSys 2022, §2):

  L(P, Q) = sum_{(u,i) in S} (<p_u, q_i> - 1)^2                observed: 1, 1
          + alpha0 sum_{u in U} sum_{i in I} <p_u, q_i>^2       all pairs: 0
          + lambda sum_u (n_u + alpha0 |I|)^nu ||p_u||^2
          + lambda sum_i (n_i + alpha0 |U|)^nu ||q_i||^2

n_u, n_i count training pairs; the middle term is alpha0 <P^T P, Q^T Q> (the
Gramian trick: users x items is never formed). nu = 1 by default, as in
their code. No bias: all d dimensions are factors, as their code scores a
plain dot product. Factors start from N(0, (sigma / sqrt(d))^2), sigma 0.1.

A half-epoch fixes one side and solves each row of the other, exactly by
batched Cholesky or approximately by conjugate gradients (ials_solve.py);
either way the loss never rises.
"""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import ials_layout
from dot_vs_learned import ials_solve
from dot_vs_learned import models

# The authors' settings on the NCF protocol (google-research/ials README).
ML1M = dict(dim=192, reg=0.007, alpha0=0.3, epochs=12, init_stddev=0.1)
PINTEREST = dict(dim=192, reg=0.02, alpha0=0.007, epochs=16, init_stddev=0.1)


class IALSState(NamedTuple):
  params: models.DotParams
  key: jax.Array  # typed PRNG key (the solves use no randomness)
  epoch: jax.Array  # epochs done


class IALSData(NamedTuple):
  users: ials_layout.Side  # solves user rows from item factors
  items: ials_layout.Side  # solves item rows from user factors
  pair_users: jax.Array  # [C, P] int32 training pairs for `loss`; pad = U
  pair_items: jax.Array  # [C, P] int32


def reg_loss(factors_RxD, counts_R, num_other, hp) -> jax.Array:
  """sum_r lambda (n_r + alpha0 |other|)^nu ||x_r||^2."""
  return jnp.sum(ials_solve.row_reg(counts_R, num_other, hp) *
                 jnp.sum(factors_RxD ** 2, axis=-1))


def _row_counts(side: ials_layout.Side):
  """Each row's pair count, in row order."""
  return jnp.concatenate([c.reshape(-1) for c in side.counts])[side.where]


def epoch(state: IALSState, data: IALSData, hp: ials_solve.Hparams,
          mesh=None, solver="cholesky", cg_steps=3):
  """Users then items, each solved; returns (state, loss after)."""
  solve = functools.partial(ials_solve.solve_side, hp=hp, mesh=mesh,
                            solver=solver, cg_steps=cg_steps)
  user, _ = solve(data.users, state.params.item, state.params.user)
  item, item_loss = solve(data.items, user, state.params.item)
  loss = item_loss + reg_loss(user, _row_counts(data.users), item.shape[0],
                              hp)
  return (IALSState(models.DotParams(user, item), state.key,
                    state.epoch + 1), loss)


def loss(params: models.DotParams, data: IALSData,
         hp: ials_solve.Hparams) -> jax.Array:
  """The full objective L(P, Q), observed pairs gathered chunk by chunk."""
  user, item = params
  num_users, num_items = user.shape[0], item.shape[0]

  def observed(pairs):
    users, items = pairs
    s = models.row_sums(user.at[users].get(mode="fill", fill_value=0.0) *
                        item.at[items].get(mode="fill", fill_value=0.0))
    return jnp.sum(jnp.where(users < num_users, (s - 1.0) ** 2, 0.0))

  hi = jax.lax.Precision.HIGHEST
  unobserved = hp.alpha0 * jnp.sum(jnp.matmul(user.T, user, precision=hi) *
                                   jnp.matmul(item.T, item, precision=hi))
  return (jnp.sum(jax.lax.map(observed, (data.pair_users, data.pair_items)))
          + unobserved + reg_loss(user, _row_counts(data.users), num_items, hp)
          + reg_loss(item, _row_counts(data.items), num_users, hp))


def score(params: models.DotParams, users, items) -> jax.Array:
  """<p_u, q_i> for arrays of user and item ids of the same shape."""
  return models.row_sums(params.user[users] * params.item[items])


def init(key, num_users, num_items, dim, init_stddev) -> IALSState:
  """Factors ~ N(0, (init_stddev / sqrt(d))^2), as the authors' code."""
  key_u, key_i, key = jax.random.split(key, 3)
  scale = init_stddev / np.sqrt(dim)
  user = scale * jax.random.normal(key_u, (num_users, dim), jnp.float32)
  item = scale * jax.random.normal(key_i, (num_items, dim), jnp.float32)
  return IALSState(models.DotParams(user, item), key, jnp.zeros((), jnp.int32))


class IALS(NamedTuple):
  """What make_ials builds: `data` and `hparams` are epoch's other inputs."""
  init: Callable  # init(key) -> IALSState
  epoch: Callable  # epoch(state, data, hparams) -> (state, L after it)
  loss: Callable  # loss(params, data, hparams) -> L(P, Q)
  data: IALSData
  hparams: ials_solve.Hparams


def make_ials(num_users, num_items, train_users, train_items, dim, reg,
              alpha0, nu=1.0, init_stddev=0.1, *, chunk_pairs=None,
              chunk_rows=1024, granule=32, ratio=1.25, mesh=None,
              solver="cholesky", cg_steps=3) -> IALS:
  """Builds iALS on the training pairs (numpy int arrays, any order).

  Args:
    num_users, num_items: table sizes; ids without pairs solve to 0.
    train_users, train_items: observed pairs (a repeated pair counts twice).
    dim: d, all factors (no bias).
    reg, alpha0, nu: lambda (> 0), the unobserved weight, the L2 exponent.
    init_stddev: sigma of the N(0, (sigma / sqrt(d))^2) initialization.
    chunk_pairs, chunk_rows: bounds of a chunk (ials_layout.build_side);
      memory per chunk: chunk_pairs * d floats gathered, chunk_rows * d^2
      in systems (Cholesky). chunk_pairs None:
      ials_solve.CHUNK_PAIRS[solver].
    granule, ratio: the ladder of padded lengths (ials_layout.lengths).
    mesh: a 1-D jax.sharding.Mesh over which each class's chunks are split
      (for GPUs and TPUs: on CPU keep one device, see
      ials_solve.solve_side).
    solver, cg_steps: "cholesky" (exact) or "cg" (cg_steps steps from the
      current factors); see the module.

  Returns:
    IALS(init, epoch, loss, data, hparams); epoch and loss are pure and
    jittable, and vmap over a leading seed axis of the state.
  """
  users, items = np.asarray(train_users), np.asarray(train_items)
  if chunk_pairs is None and solver in ials_solve.SOLVERS:
    chunk_pairs = ials_solve.CHUNK_PAIRS[solver]
  positive = dict(dim=dim, reg=reg, init_stddev=init_stddev,
                  chunk_pairs=chunk_pairs, chunk_rows=chunk_rows,
                  granule=granule, cg_steps=cg_steps)
  for name, value, ok, need in (
      *((name, value, value > 0, "> 0") for name, value in positive.items()),
      ("alpha0", alpha0, alpha0 >= 0, ">= 0"),
      ("ratio", ratio, ratio >= 1, ">= 1"),
      ("solver", solver, solver in ials_solve.SOLVERS,
       f"one of {ials_solve.SOLVERS}"),
      ("train_items.shape", items.shape, items.shape == users.shape and
       users.ndim == 1, f"train_users.shape {users.shape}, 1-D")):
    if not ok:
      raise ValueError(f"ials.make_ials: {name}={value!r}: must be {need}")
  for name, ids, size in (("train_users", users, num_users),
                          ("train_items", items, num_items)):
    for bad in np.flatnonzero((ids < 0) | (ids >= size))[:1]:
      raise ValueError(f"ials.make_ials: {name}[{bad}]={int(ids[bad])}: "
                       f"must be in 0..{size - 1}")
  side = functools.partial(ials_layout.build_side, chunk_pairs=chunk_pairs,
                           chunk_rows=chunk_rows, granule=granule, ratio=ratio,
                           devices=1 if mesh is None else mesh.devices.size)
  size = min(chunk_pairs, max(len(users), 1))  # pairs per chunk of `loss`
  pad = -len(users) % size
  data = IALSData(
      side(users, items, num_users, num_items),
      side(items, users, num_items, num_users),
      np.append(users, np.full(pad, num_users)).reshape(-1, size),
      np.append(items, np.full(pad, num_items)).reshape(-1, size))
  data = jax.tree.map(lambda a: jnp.asarray(a, jnp.int32)
                      if a.dtype.kind in "iu" else jnp.asarray(a), data)
  hparams = ials_solve.Hparams(jnp.float32(reg), jnp.float32(alpha0),
                               jnp.float32(nu))
  return IALS(
      init=functools.partial(init, num_users=num_users, num_items=num_items,
                             dim=dim, init_stddev=init_stddev),
      epoch=functools.partial(epoch, mesh=mesh, solver=solver,
                              cg_steps=cg_steps), loss=loss, data=data,
      hparams=hparams)
