"""EASE^R (Steck, WWW 2019): a linear item-item model with a zero diagonal.

With X the binary users x items training matrix and G = X^T X, the weights
B = argmin ||X - X B||_F^2 + lambda ||B||_F^2 subject to diag(B) = 0 are

  P = (G + lambda I)^-1,   B = I - P diagMat(1 / diag(P))     (Steck, §3.1)

and a user's scores are x_u B: score(u, i) = sum of B[j, i] over the user's
training items j. Every function here returns, and EaseParams holds, B^T:
row i is column i of B, the weights of item i's score over the history,
the layout scoring reads without a transpose (B is not symmetric; since P
is, B^T = I - diagMat(1 / diag(P)) P), with diag(P): B[j, i] = B^T[j, i] x
diag_j / diag_i, so the full ranking reads B^T's rows at a user's
history, |x_u| I numbers per user instead of I^2. A grid of lambdas costs one
eigendecomposition G = Q L Q^T, since (G + lambda I)^-1 = Q (L + lambda)^-1
Q^T.

Memory (float32, I items, U users): G, P and B are I x I, 4 I^2 bytes each:
55 MB for ML-1M's 3,706 items, 6.7 GB for a 40,981-item catalogue. Peaks
measured at I = 6,000 (VmHWM, compiled beforehand), in I^2 floats: `gram`
2.5 (G, one chunk's X_c^T X_c and the scan's carry; X itself is built a
chunk of users at a time, never whole); `fit` G plus 2.1 (the Cholesky
factor, and L^-1, which becomes P, then B): about 17 GB and 21 GB at 40,981
items, for a GPU; donating G or updating it in place by column blocks did
not lower either peak on XLA:CPU. `fit_grid` holds G, Q, one P and the
stacked B's; `grid_metrics` G, Q and one B. Scoring reads B^T and the dense
histories X (U x I: 90 MB for ML-1M); the full ranking of sparse data reads
B^T's rows at the histories with diag(P) (full_ranking.py).
`fit_in_place` is for catalogues where those peaks do not fit: G from the
sparse X (scipy), then LAPACK's Cholesky (potrf) and inverse (potri) and B,
all in G's own buffer: one I^2 array at its peak. LAPACK runs on one
thread there: scipy's threaded OpenBLAS (0.3.31) potrf crashed (SIGSEGV) at
I = 32,768 and 41,000 on 2 cores, as in OpenBLAS issues #352 and #1413, and
ran single-threaded (32,768 in 104 s).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import evaluate
from dot_vs_learned import models

_HI = jax.lax.Precision.HIGHEST


def host_zeros(shape) -> np.ndarray:
  """numpy float32 zeros whose data starts on a 64-byte boundary, which
  on_device can hand to XLA:CPU without a copy."""
  size = int(np.prod(shape))
  raw = np.zeros(size + 16, np.float32)
  start = (-raw.ctypes.data % 64) // 4
  return raw[start:start + size].reshape(shape)


def on_device(x_np: np.ndarray) -> jax.Array:
  """x as a JAX array, sharing host_zeros' buffer on the CPU. jnp.asarray
  copies: measured at I = 16,000, once for an aligned array, twice at its
  first use for numpy's own (16-byte aligned) one; at I = 40,981 that is
  13 GB more than B itself. x becomes read-only: a write to the shared
  buffer would change the JAX array too."""
  x_np.flags.writeable = False
  return jax.device_put(x_np, may_alias=True)


def history_matrix(train_users, train_items, num_users,
                   num_items) -> np.ndarray:
  """The dense binary X [U, I] (numpy float32, host_zeros); repeated pairs
  count once."""
  x = host_zeros((num_users, num_items))
  x[np.asarray(train_users), np.asarray(train_items)] = 1.0
  return x


def _user_chunks(train_users, train_items, num_users, chunk_users):
  """Pairs grouped by chunks of users: local rows and items, padded."""
  users = np.asarray(train_users, np.int64)
  items = np.asarray(train_items, np.int64)
  chunk = users // chunk_users
  num_chunks = max(-(-num_users // chunk_users), 1)
  sizes = np.bincount(chunk, minlength=num_chunks)
  order = np.argsort(chunk, kind="stable")
  slot = np.arange(len(users)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
  width = max(int(sizes.max(initial=0)), 1)
  rows = np.full((num_chunks, width), chunk_users, np.int32)  # pad: dropped
  cols = np.zeros((num_chunks, width), np.int32)
  rows[chunk[order], slot] = users[order] % chunk_users
  cols[chunk[order], slot] = items[order]
  return rows, cols


@functools.partial(jax.jit, static_argnums=(2, 3))
def _gram(rows_CxP, cols_CxP, chunk_users, num_items):
  """Sums X_c^T X_c over chunks c of users, X_c built dense from pairs."""
  def add(g_IxI, chunk):
    rows, cols = chunk
    x = jnp.zeros((chunk_users, num_items), jnp.float32).at[rows, cols].set(
        1.0, mode="drop")
    return g_IxI + jnp.matmul(x.T, x, precision=_HI), None

  return jax.lax.scan(add, jnp.zeros((num_items, num_items), jnp.float32),
                      (rows_CxP, cols_CxP))[0]


def gram(train_users, train_items, num_users, num_items,
         chunk_users=512) -> jax.Array:
  """G = X^T X [I, I] float32 (exact counts up to 2^24), chunk by chunk."""
  rows, cols = _user_chunks(train_users, train_items, num_users, chunk_users)
  return _gram(jnp.asarray(rows), jnp.asarray(cols), chunk_users, num_items)


def weights_from_inverse(p_IxI) -> tuple[jax.Array, jax.Array]:
  """(B^T, diag(P)): B^T = I - diagMat(1 / diag(P)) P, row i of P scaled by
  -1 / P_ii, with a zero diagonal (P is symmetric)."""
  diag_I = jnp.diagonal(p_IxI)
  bt_IxI = -p_IxI / diag_I[:, None]
  return bt_IxI * (1.0 - jnp.eye(p_IxI.shape[0], dtype=bt_IxI.dtype)), diag_I


@jax.jit
def fit(gram_IxI, reg) -> tuple[jax.Array, jax.Array]:
  """(B^T, diag(P)) for one lambda, via the Cholesky factor of G + lambda I."""
  n = gram_IxI.shape[0]
  chol = jax.lax.linalg.cholesky(
      gram_IxI + reg * jnp.eye(n, dtype=gram_IxI.dtype), symmetrize_input=False)
  # P = L^-T L^-1: two triangular solves, the second in place of L^-1.
  inv = jax.lax.linalg.triangular_solve(
      chol, jnp.eye(n, dtype=chol.dtype), left_side=True, lower=True)
  p_IxI = jax.lax.linalg.triangular_solve(chol, inv, left_side=True,
                                          lower=True, transpose_a=True)
  return weights_from_inverse(p_IxI)


def gram_numpy(train_users, train_items, num_users,
               num_items) -> np.ndarray:
  """G = X^T X as a writable numpy float32 [I, I] (host_zeros), through
  scipy.sparse."""
  import scipy.sparse  # pylint: disable=g-import-not-at-top
  x = scipy.sparse.csr_matrix(
      (np.ones(len(train_users), np.float32),
       (np.asarray(train_users), np.asarray(train_items))),
      shape=(num_users, num_items))
  x.sum_duplicates()
  x.data[:] = 1.0  # repeated pairs count once
  g = (x.T @ x).tocoo()
  out = host_zeros((num_items, num_items))
  out[g.row, g.col] = g.data
  return out


def fit_in_place(g_IxI: np.ndarray, reg,
                 block=2048) -> tuple[np.ndarray, np.ndarray]:
  """(B^T, diag(P)) for one lambda, B^T computed in the buffer of G (numpy
  float32 [I, I], overwritten and returned); G's own buffer is the only
  I x I array."""
  import scipy.linalg.lapack as lapack  # pylint: disable=g-import-not-at-top
  import threadpoolctl  # pylint: disable=g-import-not-at-top
  n = g_IxI.shape[0]
  if g_IxI.dtype != np.float32 or not g_IxI.flags.c_contiguous:
    raise ValueError("ease.fit_in_place: needs a C-contiguous float32 G")
  g_IxI[np.diag_indices(n)] += np.float32(reg)
  # G is symmetric: its transpose is the same matrix, Fortran-ordered, so
  # LAPACK works in place; its upper triangle is our lower one.
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    factor, info = lapack.spotrf(g_IxI.T, lower=0, overwrite_a=1, clean=0)
    if info != 0 or not np.shares_memory(factor, g_IxI):
      raise FloatingPointError(f"ease.fit_in_place: potrf info {info}")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
  if info != 0 or not np.shares_memory(inverse, g_IxI):
    raise FloatingPointError(f"ease.fit_in_place: potri info {info}")
  # P's lower triangle (row >= column) is set; mirror it block by block.
  for start in range(0, n, block):
    stop = min(start + block, n)
    g_IxI[start:stop, stop:] = g_IxI[stop:, start:stop].T
    square = g_IxI[start:stop, start:stop]
    upper = np.triu_indices(stop - start, 1)
    square[upper] = square.T[upper]
  # B^T = I - diagMat(1 / diag(P)) P, as weights_from_inverse.
  diagonal = g_IxI[np.diag_indices(n)].copy()
  for start in range(0, n, block):
    g_IxI[start:start + block] /= -diagonal[start:start + block, None]
  g_IxI[np.diag_indices(n)] = 0.0
  return g_IxI, diagonal


def eigen(gram_IxI):
  """G = Q diag(e) Q^T (one eigendecomposition for a whole lambda grid)."""
  return jnp.linalg.eigh(gram_IxI)


def weights_from_eigen(eigvals_I, eigvecs_IxI,
                       reg) -> tuple[jax.Array, jax.Array]:
  """(B^T, diag(P)) for one lambda from G's eigendecomposition."""
  p_IxI = jnp.matmul(eigvecs_IxI / (eigvals_I + reg)[None, :], eigvecs_IxI.T,
                     precision=_HI)
  return weights_from_inverse(p_IxI)


@jax.jit
def fit_grid(gram_IxI, regs_L) -> tuple[jax.Array, jax.Array]:
  """(B^T [L, I, I], diag(P) [L, I]) for every lambda in regs_L, from one
  eigendecomposition."""
  eigvals_I, eigvecs_IxI = eigen(gram_IxI)
  return jax.lax.map(lambda r: weights_from_eigen(eigvals_I, eigvecs_IxI, r),
                     regs_L)


def score(params: models.EaseParams, users, items, chunk=1024) -> jax.Array:
  """x_u . B[:, i] for arrays of user and item ids of the same shape.

  Pairs go `chunk` at a time: each reads a row of X and a row of B^T.
  """
  shape = jnp.shape(users)
  users, items = jnp.ravel(users), jnp.ravel(items)
  pad = -users.shape[0] % chunk
  users = jnp.pad(users, (0, pad)).reshape(-1, chunk)
  items = jnp.pad(items, (0, pad)).reshape(-1, chunk)

  def one(pairs):
    u, i = pairs
    return jnp.einsum("pi,pi->p", params.history[u], params.weights_t[i],
                      precision=_HI)

  scores = jax.lax.map(one, (users, items)).reshape(-1)
  return scores[:scores.shape[0] - pad].reshape(shape)


@functools.partial(jax.jit, static_argnames="evaluate_fn")
def grid_evaluate(gram_IxI, regs_L, history_UxI,
                  evaluate_fn) -> dict[str, jax.Array]:
  """evaluate_fn(EaseParams) -> metrics for every lambda, in one program.

  One eigendecomposition, then one B (I x I) at a time; every output gets
  a leading lambda axis [L].
  """
  eigvals_I, eigvecs_IxI = eigen(gram_IxI)

  def metrics(reg):
    weights_t, diag = weights_from_eigen(eigvals_I, eigvecs_IxI, reg)
    return evaluate_fn(models.EaseParams(weights_t, history_UxI, diag))

  return jax.lax.map(metrics, regs_L)


def grid_metrics(gram_IxI, regs_L, history_UxI, test_items_U, negatives_UxN,
                 mask_UxN, k) -> dict[str, jax.Array]:
  """evaluate.sampled_metrics of X B for every lambda (grid_evaluate)."""
  arrays = (test_items_U, negatives_UxN, mask_UxN)
  return grid_evaluate(gram_IxI, regs_L, history_UxI, functools.partial(
      evaluate.metrics_of, score, arrays=arrays, k=k))
