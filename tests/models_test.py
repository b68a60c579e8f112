"""Tests of MF with biases (Eq. 2) and popularity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import models


def test_init_shapes_biases_and_scale():
  params = models.init_mf(jax.random.key(0), 300, 200, 65, 0.1)
  assert params.user.shape == (300, 65) and params.item.shape == (200, 65)
  assert float(params.bias) == 0.0
  np.testing.assert_array_equal(params.user[:, 0], 0.0)
  np.testing.assert_array_equal(params.item[:, 0], 0.0)
  assert abs(float(np.std(params.user[:, 1:])) - 0.1) < 0.005


def test_mf_score_is_eq2():
  rng = np.random.default_rng(0)
  user, item = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
  params = models.MFParams(user, item, np.float64(0.25))
  users, items = np.array([0, 2, 2]), np.array([4, 0, 1])
  expected = [0.25 + user[u, 0] + item[i, 0] + user[u, 1:] @ item[i, 1:]
              for u, i in zip(users, items)]
  np.testing.assert_allclose(models.mf_score(params, users, items), expected,
                             rtol=1e-5)


def test_popularity_counts_and_score():
  counts = models.popularity_counts(np.array([2, 0, 2, 2]), 4)
  np.testing.assert_array_equal(counts, [1, 0, 3, 0])
  np.testing.assert_array_equal(
      models.popularity_score(counts, np.array([0, 1]), np.array([2, 1])),
      [3, 0])


NUM_USERS, NUM_ITEMS = 7, 9


def init(module, seed=0):
  users = jnp.zeros((2,), jnp.int32)
  return module.init(jax.random.key(seed), users, users)


def relu(x):
  return np.maximum(x, 0.0)


@pytest.mark.parametrize("factor", [8, 32])
def test_parameter_counts_of_the_ncf_presets(factor):
  k, rows = factor, NUM_USERS + NUM_ITEMS

  def shapes(module):  # eval_shape: the shapes, nothing computed
    return jax.eval_shape(lambda: init(module))

  gmf = models.count_params(shapes(models.GMF(NUM_USERS, NUM_ITEMS, k)))
  assert gmf == rows * k + k + 1
  mlp_layers = (4 * k * 4 * k + 4 * k) + (4 * k * 2 * k + 2 * k) + (
      2 * k * k + k)
  mlp = models.count_params(shapes(models.ncf_mlp3(NUM_USERS, NUM_ITEMS, k)))
  assert mlp == rows * 2 * k + mlp_layers + k + 1
  neumf = models.count_params(shapes(models.ncf_neumf(NUM_USERS, NUM_ITEMS,
                                                      k)))
  assert neumf == rows * 3 * k + mlp_layers + 2 * k + 1


def test_embeddings_start_from_normal_0_01():
  params = init(models.GMF(2000, 2000, 16))["params"]
  assert abs(float(np.std(params["user"]["embedding"])) - 0.01) < 0.0005


def test_gmf_and_mlp_forward_against_numpy():
  users, items = jnp.array([0, 3, 6]), jnp.array([8, 1, 1])
  gmf = models.GMF(NUM_USERS, NUM_ITEMS, 4)
  params = init(gmf, 1)
  g = jax.tree.map(np.asarray, params["params"])
  p, q = g["user"]["embedding"][users], g["item"]["embedding"][items]
  expected = (p * q) @ g["out"]["kernel"][:, 0] + g["out"]["bias"][0]
  np.testing.assert_allclose(gmf.apply(params, users, items), expected,
                             rtol=1e-5, atol=1e-7)

  mlp = models.MLP(NUM_USERS, NUM_ITEMS, 3, (5, 2))
  params = init(mlp, 2)
  m = jax.tree.map(np.asarray, params["params"])
  x = np.concatenate([m["user"]["embedding"][users],
                      m["item"]["embedding"][items]], axis=1)
  for name in ("layers_0", "layers_1"):
    x = relu(x @ m[name]["kernel"] + m[name]["bias"])
  expected = x @ m["out"]["kernel"][:, 0] + m["out"]["bias"][0]
  np.testing.assert_allclose(mlp.apply(params, users, items), expected,
                             rtol=1e-5, atol=1e-7)


def test_neumf_with_mlp_half_zeroed_equals_gmf():
  neumf = models.ncf_neumf(NUM_USERS, NUM_ITEMS, 4)
  gmf = models.GMF(NUM_USERS, NUM_ITEMS, 4)
  gmf_params = init(gmf, 3)
  params = init(neumf, 4)
  params["params"]["gmf"] = {k: v for k, v in gmf_params["params"].items()
                             if k != "out"}
  kernel = np.zeros((4 + 4, 1), np.float32)
  kernel[:4] = gmf_params["params"]["out"]["kernel"]
  params["params"]["out"] = {"kernel": jnp.asarray(kernel),
                             "bias": gmf_params["params"]["out"]["bias"]}
  users = jnp.arange(NUM_USERS)
  items = jnp.arange(NUM_USERS) % NUM_ITEMS
  np.testing.assert_allclose(neumf.apply(params, users, items),
                             gmf.apply(gmf_params, users, items), rtol=1e-6)


def test_pretrained_neumf_copies_weights_and_mixes_outputs():
  k = 4
  gmf_params = init(models.GMF(NUM_USERS, NUM_ITEMS, k), 5)
  mlp_params = init(models.ncf_mlp3(NUM_USERS, NUM_ITEMS, k), 6)
  neumf = models.ncf_neumf(NUM_USERS, NUM_ITEMS, k)
  params = models.neumf_from_pretrained(gmf_params, mlp_params, alpha=0.5)
  # Same tree structure and shapes as a freshly initialized NeuMF.
  fresh = init(neumf)
  assert (jax.tree.structure(params) == jax.tree.structure(fresh))
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, fresh)
  np.testing.assert_array_equal(
      params["params"]["mlp"]["layers_2"]["kernel"],
      mlp_params["params"]["layers_2"]["kernel"])
  np.testing.assert_array_equal(
      params["params"]["gmf"]["user"]["embedding"],
      gmf_params["params"]["user"]["embedding"])
  # The output is the alpha-weighted sum of the two models' logits.
  users, items = jnp.array([0, 2, 5]), jnp.array([1, 8, 3])
  expected = 0.5 * models.GMF(NUM_USERS, NUM_ITEMS, k).apply(
      gmf_params, users, items) + 0.5 * models.ncf_mlp3(
          NUM_USERS, NUM_ITEMS, k).apply(mlp_params, users, items)
  np.testing.assert_allclose(neumf.apply(params, users, items), expected,
                             rtol=1e-5, atol=1e-7)
