"""Tests of iALS (ials.py) against dense numpy least squares."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import dot_baselines
from dot_vs_learned import evaluate
from dot_vs_learned import models
from dot_vs_learned import ials
from dot_vs_learned import ials_layout

NUM_USERS, NUM_ITEMS, DIM, REG, ALPHA0 = 13, 11, 4, 0.05, 0.3
# Tiny chunks and a steep ladder, so that several classes, several chunks
# per class and padded rows all occur.
SMALL = dict(chunk_pairs=16, chunk_rows=3, granule=4, ratio=2.0)
# Jitted once for every test (the layouts of _model share their shapes).
EPOCH = jax.jit(ials.epoch, static_argnames="mesh")
LOSS = jax.jit(ials.loss)
INIT = jax.jit(ials.init, static_argnums=(1, 2, 3, 4))


def _init(key):
  return INIT(key, NUM_USERS, NUM_ITEMS, DIM, 0.1)


def _pairs():
  """A random 0/1 matrix with user 3 and item 5 empty, pairs shuffled."""
  rng = np.random.default_rng(0)
  x = rng.random((NUM_USERS, NUM_ITEMS)) < 0.35
  x[3], x[:, 5] = False, False
  users, items = np.nonzero(x)
  order = rng.permutation(len(users))
  return x, users[order], items[order]


def _model(nu=1.0, **kwargs):
  _, users, items = _pairs()
  return ials.make_ials(NUM_USERS, NUM_ITEMS, users, items, DIM, REG, ALPHA0,
                        nu, **{**SMALL, **kwargs})


def _least_squares(x_RxO, other_OxD, nu):
  """Each row's argmin of its terms of L, by numpy lstsq on the stacked
  system: weight 1 and target 1 per observed pair, weight alpha0 and target
  0 per pair, sqrt(lambda_r) I for the L2."""
  num_other, dim = other_OxD.shape
  rows = []
  for x_O in x_RxO:
    reg = REG * (x_O.sum() + ALPHA0 * num_other) ** nu
    design = np.concatenate([other_OxD[x_O], np.sqrt(ALPHA0) * other_OxD,
                             np.sqrt(reg) * np.eye(dim)])
    target = np.concatenate([np.ones(x_O.sum()), np.zeros(num_other + dim)])
    rows.append(np.linalg.lstsq(design, target, rcond=None)[0])
  return np.array(rows)


def _dense_loss(x, user, item, nu):
  """L(P, Q) with the users x items scores formed."""
  s = user @ item.T
  n_u, n_i = x.sum(1), x.sum(0)
  return (np.sum(x * (s - 1) ** 2) + ALPHA0 * np.sum(s ** 2)
          + REG * np.sum((n_u + ALPHA0 * NUM_ITEMS) ** nu * (user ** 2).T)
          + REG * np.sum((n_i + ALPHA0 * NUM_USERS) ** nu * (item ** 2).T))


def test_lengths_ladder():
  np.testing.assert_array_equal(ials_layout.lengths(32, 1.25, 300),
                                [32, 64, 96, 128, 160, 224, 288, 384])
  np.testing.assert_array_equal(ials_layout.lengths(2, 1.5, 7),
                                [2, 4, 6, 10])


def test_layout_holds_every_row_once():
  x, users, items = _pairs()
  side = ials_layout.build_side(users, items, NUM_USERS, NUM_ITEMS, **SMALL)
  # Counts 0..8: lengths 4 and 8, three chunks each, rows padded to fill.
  assert [c.shape for c in side.cols] == [(3, 3, 4), (3, 2, 8)]
  rows = [r for c in side.cols for r in c.reshape(-1, c.shape[-1])]
  counts = np.concatenate([c.reshape(-1) for c in side.counts])
  assert sorted(side.where.tolist()) == sorted(set(side.where.tolist()))
  for user in range(NUM_USERS):
    row, n = rows[side.where[user]], x[user].sum()
    assert counts[side.where[user]] == n
    np.testing.assert_array_equal(np.sort(row[:n]), np.flatnonzero(x[user]))
    assert np.all(row[n:] == NUM_ITEMS)  # padding, gathered as zeros


@pytest.mark.parametrize("nu, layout", [(0.0, SMALL), (1.0, SMALL),
                                        (1.0, {})])
def test_half_steps_equal_numpy_weighted_least_squares(nu, layout):
  x, users, items = _pairs()
  model = ials.make_ials(NUM_USERS, NUM_ITEMS, users, items, DIM, REG, ALPHA0,
                         nu, **layout)
  state = _init(jax.random.key(1))
  after, loss = EPOCH(state, model.data, model.hparams)
  user = _least_squares(x, np.asarray(state.params.item, np.float64), nu)
  np.testing.assert_allclose(after.params.user, user, rtol=2e-4, atol=1e-6)
  np.testing.assert_array_equal(after.params.user[3], 0.0)  # no pairs
  # Items from the epoch's users, so that errors do not compound.
  user = np.asarray(after.params.user, np.float64)
  item = _least_squares(x.T, user, nu)
  np.testing.assert_allclose(after.params.item, item, rtol=2e-4, atol=1e-6)
  np.testing.assert_array_equal(after.params.item[5], 0.0)
  np.testing.assert_allclose(loss, _dense_loss(x, user, item, nu), rtol=1e-5)
  assert int(after.epoch) == 1


def test_loss_never_rises():
  x, _, _ = _pairs()
  model = _model()
  state = _init(jax.random.key(2))
  f64 = lambda a: np.asarray(a, np.float64)
  user, item = map(f64, state.params)
  losses = [_dense_loss(x, user, item, 1.0)]
  np.testing.assert_allclose(LOSS(state.params, model.data, model.hparams),
                             losses[0], rtol=1e-5)
  for _ in range(6):
    state, _ = EPOCH(state, model.data, model.hparams)
    user = f64(state.params.user)
    losses.append(_dense_loss(x, user, item, 1.0))  # after the users' half
    item = f64(state.params.item)
    losses.append(_dense_loss(x, user, item, 1.0))  # after the items' half
  assert np.all(np.diff(losses) <= 1e-6 * losses[0]), losses
  assert losses[-1] < 0.8 * losses[0]
  np.testing.assert_allclose(LOSS(state.params, model.data, model.hparams),
                             losses[-1], rtol=1e-5)


def test_conjugate_gradients_lower_the_loss_and_converge_to_cholesky():
  x, _, _ = _pairs()
  f64 = lambda a: np.asarray(a, np.float64)
  state = _init(jax.random.key(2))
  exact = jax.jit(_model().epoch)
  for steps in (3, 2 * DIM):
    model = _model(solver="cg", cg_steps=steps)
    epoch = jax.jit(model.epoch)
    cg_state, losses = state, [_dense_loss(x, *map(f64, state.params), 1.0)]
    for _ in range(4):
      cg_state, loss = epoch(cg_state, model.data, model.hparams)
      losses.append(_dense_loss(x, *map(f64, cg_state.params), 1.0))
      # The recorded loss is the objective at the inexact factors.
      np.testing.assert_allclose(loss, losses[-1], rtol=1e-4)
    assert np.all(np.diff(losses) <= 1e-6 * losses[0]), (steps, losses)
    # From the same factors, 2d steps solve each row as Cholesky does.
    one_cg, _ = epoch(state, model.data, model.hparams)
    one_exact, _ = exact(state, model.data, model.hparams)
    if steps == 2 * DIM:
      np.testing.assert_allclose(one_cg.params.user, one_exact.params.user,
                                 rtol=1e-3, atol=1e-5)
    else:  # 3 steps get most of the way
      assert losses[1] < 0.5 * (losses[0] + _dense_loss(
          x, *map(f64, one_exact.params), 1.0))


def test_vmapped_seeds_equal_single_runs():
  model = _model()
  keys = jax.random.split(jax.random.key(3), 3)
  run = jax.jit(jax.vmap(ials.epoch, in_axes=(0, None, None)))
  states = jax.vmap(_init)(keys)
  for _ in range(2):
    states, losses = run(states, model.data, model.hparams)
  for i in range(3):
    state = _init(keys[i])
    for _ in range(2):
      state, loss = EPOCH(state, model.data, model.hparams)
    np.testing.assert_allclose(states.params.user[i], state.params.user,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states.params.item[i], state.params.item,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(losses[i], loss, rtol=1e-6)


def test_mesh_of_one_device_changes_nothing():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("rows",))
  base = _model()
  state = _init(jax.random.key(4))
  expected, _ = EPOCH(state, base.data, base.hparams)
  model = _model(mesh=mesh)
  got, _ = EPOCH(state, model.data, model.hparams, mesh=mesh)
  np.testing.assert_allclose(got.params.item, expected.params.item,
                             rtol=1e-5, atol=1e-6)


def test_init_scale_and_score():
  state = INIT(jax.random.key(5), 200, 100, 64, 0.1)
  assert abs(float(jnp.std(state.params.user)) - 0.1 / 8) < 5e-4
  params = models.DotParams(jnp.arange(6.0).reshape(3, 2),
                           jnp.arange(4.0).reshape(2, 2))
  np.testing.assert_allclose(
      ials.score(params, jnp.array([[0, 2]]), jnp.array([[1, 0]])),
      [[0 * 2 + 1 * 3, 4 * 0 + 5 * 1]])


def test_beats_popularity_on_generated_data():
  data = datasets.generate_default(num_users=300, num_items=200)
  model = ials.make_ials(data.num_users, data.num_items, data.train_users,
                         data.train_items, 16, 0.05, 0.3, ratio=4.0)
  state = INIT(jax.random.key(0), data.num_users, data.num_items, 16, 0.1)
  for _ in range(6):
    state, _ = EPOCH(state, model.data, model.hparams)
  mask = evaluate.candidate_mask(data.test_items, data.test_negatives)
  metrics = evaluate.sampled_metrics(
      ials.score, state.params, jnp.asarray(data.test_items),
      jnp.asarray(data.test_negatives), jnp.asarray(mask), 10)
  popularity = dot_baselines.popularity_metrics(data, 10)
  assert popularity["hr"] == pytest.approx(0.3, abs=1e-6)
  assert float(metrics["hr"]) > 0.7 and float(metrics["ndcg"]) > 0.45


@pytest.mark.parametrize("change, message", [
    (dict(reg=0.0), "reg=0.0: must be > 0"),
    (dict(dim=0), "dim=0: must be > 0"),
    (dict(train_users=np.array([0, 13])), "train_users[1]=13: must be in"),
    (dict(train_items=np.array([0])), "train_items.shape=(1,)"),
])
def test_bad_input_names_the_argument(change, message):
  args = dict(num_users=NUM_USERS, num_items=NUM_ITEMS,
              train_users=np.array([0, 1]), train_items=np.array([2, 3]),
              dim=DIM, reg=REG, alpha0=ALPHA0)
  with pytest.raises(ValueError, match=re.escape("ials.make_ials: " +
                                                message)):
    ials.make_ials(**{**args, **change})
