"""Tests of lazy Adam (lazy_adam.py) against optax's dense Adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import dot_baselines
from dot_vs_learned import lazy_adam
from dot_vs_learned import models
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import stream
from dot_vs_learned import train

LR = 0.01
_ALL_USERS = jnp.arange(9) % 6  # as many as the 9 items: a batch's pairs
_step = jax.jit(lazy_adam.step)


def _gmf_params():
  module = models.GMF(num_users=6, num_items=9, dim=3)
  ids = jnp.zeros((1,), jnp.int32)
  params = module.init(jax.random.key(0), ids, ids)
  return jax.tree.map(lambda x: jax.random.normal(jax.random.key(1),
                                                  x.shape), params)


def _loss(p, users, items, weights):
  """A loss that touches only the rows of `users` and `items`."""
  flat = p["params"]
  return (jnp.sum(weights[:, None] * flat["user"]["embedding"][users] ** 2)
          + jnp.sum(weights[:, None] *
                    jnp.sin(flat["item"]["embedding"][items]))
          + jnp.sum(flat["out"]["kernel"] ** 2))


@jax.jit
def _grads(params, users, items):
  """The gradient with respect to the tables (dense Adam's)."""
  return jax.grad(_loss)(params, users, items, jnp.ones(users.shape))


@jax.jit
def _row_grads(params, users, items, weights=None):
  """The gradient with respect to the batch's rows (lazy Adam's)."""
  slots = jnp.arange(users.shape[0])
  weights = jnp.ones(users.shape) if weights is None else weights
  return jax.grad(_loss)(lazy_adam.rows(params, users, items), slots, slots,
                         weights)


def _every(ids):
  """`used`: every example of the batch is real (no padding)."""
  return jnp.ones(ids.shape, bool)


@jax.jit
def _dense(params, state, grads):
  updates, state = optax.scale_by_adam().update(grads, state, params)
  return jax.tree.map(lambda p, u: p - LR * u, params, updates), state


def test_a_batch_using_every_row_is_dense_adam():
  params = _gmf_params()
  users = jnp.arange(10) % 6
  items = jnp.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
  lazy_p, lazy_s = params, lazy_adam.init(params)
  dense_p, dense_s = params, optax.scale_by_adam().init(params)
  for _ in range(3):
    lazy_p, lazy_s = _step(lazy_p, lazy_s, _row_grads(lazy_p, users, items),
                           users, items, _every(items), LR)
    dense_p, dense_s = _dense(dense_p, dense_s, _grads(dense_p, users, items))
  for a, b in zip(jax.tree.leaves((lazy_p, lazy_s)),
                  jax.tree.leaves((dense_p, dense_s))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _after_a_step_on_every_row():
  """GMF's params and lazy Adam's state after one step using every row."""
  params = _gmf_params()
  return _step(params, lazy_adam.init(params),
               _row_grads(params, _ALL_USERS, jnp.arange(9)), _ALL_USERS,
               jnp.arange(9), _every(jnp.arange(9)), LR)


def test_rows_outside_the_batch_do_not_move():
  # Step 1 used every row (they have momentum); step 2 users 0-1, items 2-3.
  params, state = _after_a_step_on_every_row()
  users, items = jnp.array([0, 1, 1]), jnp.array([2, 3, 2])
  after, state2 = _step(params, state, _row_grads(params, users, items),
                        users, items, _every(items), LR)
  user_before = params["params"]["user"]["embedding"]
  user_after = after["params"]["user"]["embedding"]
  np.testing.assert_array_equal(user_after[2:], user_before[2:])
  assert np.all(np.abs(user_after[:2] - user_before[:2]) > 0)
  item_mu = state2.mu["params"]["item"]["embedding"]
  np.testing.assert_array_equal(np.delete(item_mu, [2, 3], axis=0),
                                np.delete(state.mu["params"]["item"]
                                          ["embedding"], [2, 3], axis=0))
  # Dense Adam moves every row by its momentum.
  dense, _ = _dense(params, state, _grads(params, users, items))
  assert np.all(np.abs(dense["params"]["user"]["embedding"][2:]
                       - user_before[2:]) > 0)
  # Layer weights are dense: the kernel moves.
  assert not np.allclose(after["params"]["out"]["kernel"],
                         params["params"]["out"]["kernel"])
  assert int(state2.count) == 2


def test_padding_leaves_its_rows_untouched():
  params, state = _after_a_step_on_every_row()
  # The batch's last example is padding (weight 0: no gradient) on user 4,
  # item 7: the step equals the one of the batch without it.
  users, items = jnp.array([0, 1, 4]), jnp.array([2, 3, 7])
  used = jnp.array([True, True, False])
  padded = _step(params, state, _row_grads(params, users, items, 1.0 * used),
                 users, items, used, LR)
  real = _step(params, state, _row_grads(params, users[:2], items[:2]),
               users[:2], items[:2], _every(items[:2]), LR)
  for a, b in zip(jax.tree.leaves(padded), jax.tree.leaves(real)):
    np.testing.assert_array_equal(a, b)
  moved = padded[0]["params"]["user"]["embedding"]
  assert not np.array_equal(moved[0], params["params"]["user"]["embedding"][0])


def test_mf_rows_and_a_gmf_run_train(tmp_path):
  # MF's tables through lazy Adam: the unused item rows stay.
  params = models.MFParams(jnp.ones((3, 2)), jnp.ones((4, 2)), jnp.zeros(()))
  grads = models.MFParams(jnp.ones((1, 2)), jnp.ones((1, 2)), jnp.ones(()))
  out, _ = _step(params, lazy_adam.init(params), grads,
                 jnp.array([0]), jnp.array([1]), _every(jnp.array([1])), LR)
  np.testing.assert_array_equal(np.asarray(out.item)[[0, 2, 3]], 1.0)
  np.testing.assert_allclose(out.item[1], 1.0 - LR, rtol=1e-5)
  np.testing.assert_allclose(out.bias, -LR, rtol=1e-5)
  config = ncf_config.default_config()
  config.data.update(num_users=150, num_items=200)
  ncf_config.use_ncf_recipe(config, "gmf")
  config.model.dim = 8
  config.train.update(optimizer="lazy_adam", epochs=4, learning_rate=0.01)
  config.eval.update(every=4, full_ranking=False)
  hr = ncf.run(config, tmp_path / "gmf")["final"]["hr@10"]["mean"]
  popularity = dot_baselines.popularity_metrics(
      datasets.load_dataset(config.data), 10)["hr"]
  assert hr > popularity + 0.03


# NeuMF holds both GMF's and the MLP's towers; MF and the MLP alone are slow.
@pytest.mark.parametrize("name", [
    pytest.param("mf", marks=pytest.mark.slow), "gmf",
    pytest.param("mlp", marks=pytest.mark.slow), "neumf"])
def test_train_step_on_every_row_is_dense_adam(name):
  # train.py's lazy step (the gradient of the batch's rows, scored as a
  # model of B users and items) against dense Adam on the tables, on
  # batches that use every row, repeats included, and a padding example.
  config = ncf_config.default_config()
  config.model.update(name=name, dim=6)
  config.train.update(reg=0.01, l2_weights=0.001)
  score = models.make_model(config, 4, 5)[1]
  params = train.init_state(jax.random.key(2), config, 4, 5).params
  steps = {}
  for optimizer in ("lazy_adam", "adam"):
    config.train.optimizer = optimizer
    steps[optimizer] = train.make_gradient_step(score, config)
  hp = train.Hparams(jnp.float32(0.01), jnp.float32(0.01))
  users = jnp.array([0, 1, 2, 3, 0, 1, 2, 3, 3, 2, 0])
  items = jnp.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4])
  weights = jnp.array([1.0] * 10 + [0.0])
  batch = stream.Batch(users, items, (users % 2).astype(jnp.float32), weights)
  got = {}
  for optimizer, (init, step) in steps.items():
    p, s = params, init(params)
    for _ in range(2):
      p, s, loss = jax.jit(step)(p, s, batch, hp)
    got[optimizer] = (p, s, loss)
  for a, b in zip(jax.tree.leaves(got["lazy_adam"]),
                  jax.tree.leaves(got["adam"])):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
