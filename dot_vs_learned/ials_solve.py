"""A half-step of iALS: every row of one side solved, by Cholesky or CG.

With the other side's factors fixed, row u minimizes its terms of the loss
(ials.py); their minimum solves
(sum_{i in I_u} q_i q_i^T + alpha0 Q^T Q + lambda_u I) p_u = sum_{i in I_u} q_i,
lambda_u = lambda (n_u + alpha0 |I|)^nu.
solver="cholesky": exactly, by batched Cholesky (on ML-1M this beat
conjugate gradients run to float32 accuracy: 24-32 steps); solver="cg":
approximately, by `cg_steps` steps of conjugate gradients from the row's
current factors, as the implicit library does (3 steps): A p comes from the
row's gathered factors, O(L d + d^2) a step against O(L d^2 + d^3). Each CG
step lowers the row's objective, so the loss never rises either way. Rows
are laid out by pair count (ials_layout.py); chunks of rows go through a map
and can be sharded over a mesh.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import ials_layout


class Hparams(NamedTuple):
  reg: jax.Array  # lambda
  alpha0: jax.Array  # weight of every pair as an unobserved 0
  nu: jax.Array  # exponent of the frequency scale (n + alpha0 |other|)^nu


def row_reg(counts, num_other, hp) -> jax.Array:
  """lambda (n + alpha0 |other|)^nu: the frequency-scaled L2 of each row."""
  return hp.reg * (counts + hp.alpha0 * num_other) ** hp.nu


SOLVERS = ("cholesky", "cg")
# Padded pairs per chunk of rows. CG reads a chunk's gathered factors twice
# a step: chunks that stay in the CPU's cache ran one ML-1M epoch faster
# (benchmarks/ials_speed.py --chunk_pairs, docs/results.md).
CHUNK_PAIRS = {"cholesky": 1 << 17, "cg": 1 << 13}
_HI = jax.lax.Precision.HIGHEST


def _gather(other_OxD, cols_RxL):
  """The other side's factors of each row's pairs; padding gathers 0."""
  # Flat ids: vmapped over seeds, a gather by [R, L] ids was 3x slower.
  return other_OxD.at[cols_RxL.reshape(-1)].get(
      mode="fill", fill_value=0.0).reshape(cols_RxL.shape +
                                           (other_OxD.shape[1],))


def _cg_chunk(other_OxD, gram_DxD, hp, cols_RxL, counts_R, x_RxD, steps):
  """`steps` conjugate-gradient steps on each row's system from x_RxD;
  returns the factors and each row's loss terms there."""
  emb_RxLxD = _gather(other_OxD, cols_RxL)
  rhs_RxD = jnp.sum(emb_RxLxD, axis=1)
  reg_R = row_reg(counts_R, other_OxD.shape[0], hp)

  def times_a(p_RxD):  # A p, A never formed
    dots_RxL = jnp.einsum("rld,rd->rl", emb_RxLxD, p_RxD, precision=_HI)
    return (jnp.einsum("rld,rl->rd", emb_RxLxD, dots_RxL, precision=_HI) +
            hp.alpha0 * jnp.matmul(p_RxD, gram_DxD, precision=_HI) +
            reg_R[:, None] * p_RxD)

  def step(_, carry):
    x, r, p, rr = carry
    ap = times_a(p)
    pap = jnp.sum(p * ap, axis=-1)
    alpha = jnp.where(pap > 0, rr / jnp.where(pap > 0, pap, 1.0), 0.0)
    x, r = x + alpha[:, None] * p, r - alpha[:, None] * ap
    rr_next = jnp.sum(r * r, axis=-1)
    beta = jnp.where(rr > 0, rr_next / jnp.where(rr > 0, rr, 1.0), 0.0)
    return x, r, r + beta[:, None] * p, rr_next

  r = rhs_RxD - times_a(x_RxD)
  x_RxD, r = jax.lax.fori_loop(0, steps, step,
                               (x_RxD, r, r, jnp.sum(r * r, axis=-1)))[:2]
  # The row's terms n_u - 2 b^T x + x^T A x, with A x = b - r (CG's
  # residual): n_u - b^T x - r^T x, no further A x.
  return x_RxD, counts_R - jnp.sum(x_RxD * (rhs_RxD + r), axis=-1)


def _solve_chunk(other_OxD, gram_DxD, hp, cols_RxL, counts_R):
  """Exact solves of one chunk's rows; returns their factors and losses."""
  dim = other_OxD.shape[1]
  emb_RxLxD = _gather(other_OxD, cols_RxL)
  lhs_RxDxD = jax.vmap(lambda e: jnp.matmul(
      e.T, e, precision=jax.lax.Precision.HIGHEST))(emb_RxLxD)
  rhs_RxD = jnp.sum(emb_RxLxD, axis=1)
  reg_R = row_reg(counts_R, other_OxD.shape[0], hp)
  lhs_RxDxD = (lhs_RxDxD + hp.alpha0 * gram_DxD +
               reg_R[:, None, None] * jnp.eye(dim, dtype=lhs_RxDxD.dtype))
  chol_RxDxD = jax.lax.linalg.cholesky(lhs_RxDxD, symmetrize_input=False)
  x_RxD = jax.scipy.linalg.cho_solve((chol_RxDxD, True),
                                     rhs_RxD[..., None])[..., 0]
  # At the minimum A x = b, so x^T A x - 2 b^T x + n_u = n_u - b^T x.
  return x_RxD, counts_R - jnp.sum(rhs_RxD * x_RxD, axis=-1)


def solve_side(side: ials_layout.Side, other_OxD, current_RxD, hp: Hparams,
               mesh=None, solver="cholesky", cg_steps=3):
  """A half-step: every row solved from the other side's factors; returns
  them [rows, d] and their summed loss terms there. "cg" starts from the
  rows' current factors `current_RxD`."""
  gram_DxD = jnp.matmul(other_OxD.T, other_OxD, precision=_HI)

  def chunks(other, gram, hp, current, cols, counts, ids):
    if solver == "cholesky":
      return jax.lax.map(lambda c: _solve_chunk(other, gram, hp, *c),
                         (cols, counts))
    start = current.at[ids].get(mode="fill", fill_value=0.0)
    return jax.lax.map(
        lambda c: _cg_chunk(other, gram, hp, *c, steps=cg_steps),
        (cols, counts, start))

  if mesh is not None:  # rows split over devices, other factors replicated
    whole, split = jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec(
        mesh.axis_names[0])
    chunks = jax.shard_map(
        chunks, mesh=mesh,
        in_specs=(whole, whole, whole, whole, split, split, split),
        out_specs=split)
  # One class after another (a scan over a switch): XLA:CPU (JAX 0.10.2, 2
  # cores) deadlocked at times when independent classes ran their LAPACK
  # calls at once, as it did with the chunks split over 2 CPU devices.
  dim, sizes = other_OxD.shape[1], [c.size for c in side.counts]
  starts = np.cumsum(sizes) - sizes

  def run_class(index, carry):
    x_all, total = carry
    x, loss = chunks(other_OxD, gram_DxD, hp, current_RxD, side.cols[index],
                     side.counts[index], side.ids[index])
    x_all = jax.lax.dynamic_update_slice(x_all, x.reshape(-1, dim),
                                         (int(starts[index]), 0))
    return x_all, total + jnp.sum(loss)

  branches = [functools.partial(run_class, i) for i in range(len(sizes))]
  (x_all, total), _ = jax.lax.scan(
      lambda carry, i: (jax.lax.switch(i, branches, carry), None),
      (jnp.zeros((sum(sizes), dim), other_OxD.dtype),
       jnp.zeros((), other_OxD.dtype)), jnp.arange(len(sizes)))
  return x_all[side.where], total
