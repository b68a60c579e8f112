"""Tests of the SGD optimizers, the shuffled stream, and vmapped seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import dot_baselines
from dot_vs_learned import models
from dot_vs_learned import ncf_config
from dot_vs_learned import sgd
from dot_vs_learned import stream
from dot_vs_learned import train

HP = train.Hparams(jnp.float32(0.1), jnp.float32(0.05))


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_sgd(user, item, bias, examples, eta=0.1, reg=0.05):
  """App. A.1 one example at a time (float64), the reference semantics."""
  user, item = user.astype(np.float64), item.astype(np.float64)
  for u, i, y in examples:
    p, q = user[u].copy(), item[i].copy()
    g = y - sigmoid(bias + p[0] + q[0] + p[1:] @ q[1:])
    user[u] += eta * (g * np.r_[1.0, q[1:]] - reg * p)
    item[i] += eta * (g * np.r_[1.0, p[1:]] - reg * q)
    bias += eta * (g - reg * bias)
  return user, item, bias


def random_params(num_users=5, num_items=6, dim=4, seed=0):
  rng = np.random.default_rng(seed)
  return models.MFParams(
      jnp.asarray(rng.normal(0, 0.5, (num_users, dim)), jnp.float32),
      jnp.asarray(rng.normal(0, 0.5, (num_items, dim)), jnp.float32),
      jnp.float32(0.1))


def make(users, items, labels, weights=None):
  weights = np.ones(len(users)) if weights is None else weights
  return stream.Batch(jnp.array(users, jnp.int32), jnp.array(items, jnp.int32),
                     jnp.array(labels, jnp.float32),
                     jnp.array(weights, jnp.float32))


# 8,947,521: ML-1M's stream at m = 8; 4,097 = 64^2 + 1 leaves the most
# room past n in the mixed-radix domain (65 x 64).
@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 1000, 4097, 9001, 8_947_521])
def test_permute_is_a_bijection(n):
  keys = jax.random.bits(jax.random.key(n), (4,), jnp.uint32)
  perm = np.asarray(stream.permute(jnp.arange(n), keys, n))
  np.testing.assert_array_equal(np.sort(perm), np.arange(n))
  if n >= 64:
    assert np.mean(perm == np.arange(n)) < 0.1  # actually shuffled


def test_permute_scatters_neighbours():
  # Consecutive positions (a positive and its negatives, before the
  # shuffle) land far apart and uncorrelated with where they started.
  n = 1_000_003
  keys = jax.random.bits(jax.random.key(7), (4,), jnp.uint32)
  perm = np.asarray(stream.permute(jnp.arange(n), keys, n)).astype(float)
  assert abs(np.corrcoef(np.arange(n), perm)[0, 1]) < 0.01
  gaps = np.abs(np.diff(perm)) / n
  assert abs(np.mean(gaps) - 1 / 3) < 0.01  # |U - V| of uniforms: 1/3
  assert np.mean(gaps < 1e-3) < 0.005
  other = np.asarray(stream.permute(
      jnp.arange(n), jax.random.bits(jax.random.key(8), (4,), jnp.uint32), n))
  assert np.mean(other == perm) < 1e-4  # another key, another permutation


def test_one_example_step_equals_numpy():
  params = random_params()
  for step in (sgd.train_step, sgd.exact_step):
    new, _ = step(params, make([2], [3], [1.0]), HP)
    user, item, bias = numpy_sgd(np.asarray(params.user),
                                 np.asarray(params.item), 0.1, [(2, 3, 1.0)])
    np.testing.assert_allclose(new.user, user, atol=1e-6)
    np.testing.assert_allclose(new.item, item, atol=1e-6)
    np.testing.assert_allclose(new.bias, bias, atol=1e-6)


def test_batched_step_sums_updates_from_batch_start():
  params = random_params()
  examples = [(0, 1, 1.0), (0, 2, 0.0), (3, 1, 0.0)]
  new, _ = sgd.train_step(params, make(*zip(*examples)), HP)
  user, item = np.asarray(params.user, np.float64), np.asarray(params.item,
                                                               np.float64)
  expected_user, expected_item, expected_bias = user.copy(), item.copy(), 0.1
  for u, i, y in examples:  # every update computed from the start values
    new_user, new_item, new_bias = numpy_sgd(user, item, 0.1, [(u, i, y)])
    expected_user += new_user - user
    expected_item += new_item - item
    expected_bias += new_bias - 0.1
  np.testing.assert_allclose(new.user, expected_user, atol=1e-6)
  np.testing.assert_allclose(new.item, expected_item, atol=1e-6)
  np.testing.assert_allclose(new.bias, expected_bias, atol=1e-6)


def numpy_waves(user, item, bias, examples, eta=0.1, reg=0.05):
  """Sequential App. A.1 except that b is read at the start of each wave.

  Example t joins wave 1 + (the latest wave of an earlier example sharing its
  user or item), the documented semantics of `exact_step`.
  """
  wave = []
  for t, (u, i, _) in enumerate(examples):
    earlier = [wave[s] for s in range(t) if examples[s][0] == u or
               examples[s][1] == i]
    wave.append(1 + max(earlier, default=0))
  user, item = user.astype(np.float64), item.astype(np.float64)
  for w in range(1, max(wave) + 1):
    members = [e for e, x in zip(examples, wave) if x == w]
    start, total = bias, 0.0
    for u, i, y in members:
      p, q = user[u].copy(), item[i].copy()
      g = y - sigmoid(start + p[0] + q[0] + p[1:] @ q[1:])
      user[u] += eta * (g * np.r_[1.0, q[1:]] - reg * p)
      item[i] += eta * (g * np.r_[1.0, p[1:]] - reg * q)
      total += g
    bias = start * (1 - eta * reg) ** len(members) + eta * total
  return user, item, bias, max(wave)


def test_exact_step_follows_sequential_order_with_repeats():
  params = random_params()
  # Users and items repeat, so the window needs several waves.
  examples = [(0, 1, 1.0), (0, 2, 0.0), (3, 1, 0.0), (4, 5, 1.0), (0, 1, 0.0),
              (3, 2, 1.0), (1, 0, 0.0), (1, 0, 1.0)]
  new, _ = sgd.exact_step(params, make(*zip(*examples)), HP)
  user, item, bias, num_waves = numpy_waves(
      np.asarray(params.user), np.asarray(params.item), 0.1, examples)
  assert num_waves == 3
  np.testing.assert_allclose(new.user, user, atol=1e-6)
  np.testing.assert_allclose(new.item, item, atol=1e-6)
  np.testing.assert_allclose(new.bias, bias, atol=1e-6)
  # The plain sequential order differs only through the global bias.
  user, item, _ = numpy_sgd(np.asarray(params.user), np.asarray(params.item),
                            0.1, examples)
  np.testing.assert_allclose(new.user, user, atol=5e-3)


def test_padding_examples_change_nothing():
  params = random_params()
  new, loss = sgd.exact_step(params, make([1, 1], [2, 2], [1.0, 0.0],
                                            [1.0, 0.0]), HP)
  single, single_loss = sgd.exact_step(params, make([1], [2], [1.0]), HP)
  for step in (sgd.train_step,):
    batched, _ = step(params, make([1, 1], [2, 2], [1.0, 0.0], [1.0, 0.0]), HP)
    np.testing.assert_allclose(batched.user, single.user, atol=1e-6)
  np.testing.assert_allclose(new.user, single.user, atol=1e-6)
  np.testing.assert_allclose(loss, single_loss, rtol=1e-6)


def small_config(optimizer="batched", num_seeds=1, epochs=2):
  config = ncf_config.default_config()
  config.model.dim = 8
  config.train.update(optimizer=optimizer, learning_rate=0.05, epochs=epochs,
                      batch_size=128, window=32, num_seeds=num_seeds,
                      num_negatives=4)
  return config


@pytest.fixture(scope="module")
def small_data():
  return datasets.generate_default(num_users=150, num_items=300, seed=1)


def test_epoch_visits_every_positive_once(small_data):
  config = small_config()
  n = small_data.train_users.shape[0] * 5
  keys = jax.random.bits(jax.random.key(0), (4,), jnp.uint32)
  batch = stream.make_batch(jnp.asarray(small_data.train_users),
                           jnp.asarray(small_data.train_items), 300, 4,
                           jnp.arange(n + 7), keys, jax.random.key(1))
  positives = np.asarray(batch.labels * batch.weights) == 1
  assert np.asarray(batch.weights).sum() == n
  pairs = sorted(zip(np.asarray(batch.users)[positives],
                     np.asarray(batch.items)[positives]))
  assert pairs == sorted(zip(small_data.train_users, small_data.train_items))
  del config


def test_negatives_are_uniform_and_follow_their_positive(small_data):
  users = small_data.train_users
  n = users.shape[0] * 5
  keys = jax.random.bits(jax.random.key(2), (4,), jnp.uint32)
  batch = stream.make_batch(jnp.asarray(users),
                            jnp.asarray(small_data.train_items), 300, 4,
                            jnp.arange(n), keys, jax.random.key(3))
  negatives = np.asarray(batch.labels) == 0
  # m = 4 negatives per positive, each with the positive's user.
  np.testing.assert_array_equal(
      np.bincount(np.asarray(batch.users)[negatives], minlength=150),
      4 * np.bincount(users, minlength=150))
  counts = np.bincount(np.asarray(batch.items)[negatives], minlength=300)
  assert counts.shape == (300,)  # no item id past the catalogue
  expected = negatives.sum() / 300
  chi2 = np.sum((counts - expected) ** 2 / expected)
  assert chi2 < 380  # 299 degrees of freedom: p < 0.001 above 380


@pytest.mark.parametrize("optimizer", ["batched", "exact"])
def test_epoch_applies_its_batches_in_stream_order(small_data, optimizer):
  config = small_config(optimizer)
  users, items = (jnp.asarray(small_data.train_users),
                  jnp.asarray(small_data.train_items))
  epoch = train.make_epoch(config, 300, users.shape[0])
  state = train.init_state(jax.random.key(4), config, 150, 300)
  got, loss = jax.jit(epoch)(state, users, items, HP)
  # The same epoch one step at a time, with the keys make_epoch derives.
  _, perm_key, neg_key = jax.random.split(state.key, 3)
  round_keys = jax.random.bits(perm_key, (4,), jnp.uint32)
  size = 128 if optimizer == "batched" else 32
  n = users.shape[0] * 5
  sgd_step = sgd.train_step if optimizer == "batched" else sgd.exact_step

  @jax.jit
  def step(params, s):
    batch = stream.make_batch(users, items, 300, 4,
                              s * size + jnp.arange(size, dtype=jnp.int32),
                              round_keys, jax.random.fold_in(neg_key, s))
    return sgd_step(params, batch, HP)

  params, losses = state.params, []
  for s in range(-(-n // size)):
    params, step_loss = step(params, s)
    losses.append(step_loss)
  total = float(np.sum(losses))
  np.testing.assert_allclose(got.params.user, params.user, atol=1e-6)
  np.testing.assert_allclose(got.params.item, params.item, atol=1e-6)
  np.testing.assert_allclose(got.params.bias, params.bias, atol=1e-6)
  np.testing.assert_allclose(loss, total / n, rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["batched", "exact"])
def test_mf_learns_generated_data_far_above_popularity(optimizer):
  data = datasets.generate_default(num_users=400, num_items=200, seed=3)
  config = small_config(optimizer, epochs=12)
  config.model.dim = 16
  init, run = train.make_train(config, data)
  _, metrics = run(init(jax.random.split(jax.random.key(0), 1)), 12)
  popularity = dot_baselines.popularity_metrics(data, 10)["hr"]
  assert float(metrics["hr"][0]) > popularity + 0.2, (metrics, popularity)


@pytest.mark.slow
def test_same_seed_gives_identical_results(small_data):
  config = small_config("batched", num_seeds=2)
  runs = []
  for _ in range(2):
    init, run = train.make_train(config, small_data)
    runs.append(run(init(jax.random.split(jax.random.key(3), 2)), 2))
  np.testing.assert_array_equal(runs[0][0].params.user,
                                runs[1][0].params.user)
  np.testing.assert_array_equal(runs[0][1]["hr"], runs[1][1]["hr"])


@pytest.fixture(scope="module")
def learnable_data():
  return datasets.generate_default(num_users=400, num_items=200, seed=3)


@pytest.mark.parametrize("name, dim", [
    ("mf", 16), ("gmf", 16), pytest.param("mlp", 16, marks=pytest.mark.slow),
    pytest.param("neumf", 18, marks=pytest.mark.slow)])
def test_every_model_learns_with_adam(learnable_data, name, dim):
  config = ncf_config.default_config()
  config.model.update(name=name, dim=dim)
  config.train.update(optimizer="adam", learning_rate=0.01, reg=0.0,
                      batch_size=256, num_negatives=4)
  ncf_config.validate(config)
  init, run = train.make_train(config, learnable_data)
  _, metrics = run(init(jax.random.split(jax.random.key(0), 1)), 10)
  popularity = dot_baselines.popularity_metrics(learnable_data, 10)["hr"]
  assert float(metrics["hr"][0]) > popularity + 0.1, (metrics, popularity)


def test_adam_loss_adds_l2_on_used_rows_and_kernels():
  config = ncf_config.default_config()
  config.model.update(name="gmf", dim=3)
  config.train.update(optimizer="adam", l2_weights=0.5)
  _, score = models.make_model(config, 4, 5)
  params = train.init_state(jax.random.key(0), config, 4, 5).params
  batch = make([1, 1, 3], [0, 4, 4], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
  hp = train.Hparams(jnp.float32(0.1), jnp.float32(0.2))
  loss, loss_sum = train.minibatch_loss(score, config, params, batch, hp)
  p = jax.tree.map(np.asarray, params["params"])
  logits = np.asarray(score(params, batch.users, batch.items))
  labels = np.array([1.0, 0.0, 0.0])
  logistic = np.log1p(np.exp(logits)) - labels * logits
  rows = (p["user"]["embedding"][[1, 1, 3]] ** 2).sum(1) + (
      p["item"]["embedding"][[0, 4, 4]] ** 2).sum(1)
  expected = ((logistic + 0.2 * rows)[:2].sum() / 2 +
              0.5 * (p["out"]["kernel"] ** 2).sum())
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(loss_sum, logistic[:2].sum(), rtol=1e-5)


def test_init_takes_given_parameters_per_seed(small_data):
  config = ncf_config.default_config()
  config.model.update(name="gmf", dim=4)
  config.train.optimizer = "sgd"
  init, _ = train.make_train(config, small_data)
  keys = jax.random.split(jax.random.key(0), 2)
  given = jax.tree.map(lambda x: x + 1.0, init(keys).params)
  states = init(keys, given)
  for a, b in zip(jax.tree.leaves(states.params), jax.tree.leaves(given)):
    np.testing.assert_array_equal(a, b)
  assert not jax.tree.leaves(states.opt_state)  # plain SGD keeps no state


def test_gmf_loss_invariance_of_section_3_3_3():
  # L(P, Q, w, lambda) = L(P / a, Q / a, a^2 w, a^2 lambda): L2 on P and Q
  # alone does not regularize GMF (paper §3.3.3).
  config = ncf_config.default_config()
  config.model.update(name="gmf", dim=5)
  config.train.update(optimizer="adam", l2_weights=0.0)
  _, score = models.make_model(config, 6, 7)
  params = train.init_state(jax.random.key(0), config, 6, 7).params
  params = jax.tree.map(lambda x: 30.0 * x, params)  # away from tiny init
  batch = make([0, 2, 5, 2], [6, 1, 1, 3], [1.0, 0.0, 1.0, 0.0])
  a, lam = 3.0, 0.01
  scaled = jax.tree.map(lambda x: x, params)
  scaled["params"]["user"]["embedding"] = params["params"]["user"][
      "embedding"] / a
  scaled["params"]["item"]["embedding"] = params["params"]["item"][
      "embedding"] / a
  scaled["params"]["out"]["kernel"] = params["params"]["out"]["kernel"] * a**2
  loss = train.minibatch_loss(score, config, params, batch,
                              train.Hparams(jnp.float32(0.1), lam))[0]
  loss_scaled = train.minibatch_loss(score, config, scaled, batch,
                                     train.Hparams(jnp.float32(0.1),
                                                    lam * a**2))[0]
  np.testing.assert_allclose(loss_scaled, loss, rtol=1e-5)
  rows = train.minibatch_loss(score, config, params, batch,
                              train.Hparams(jnp.float32(0.1), 0.0))[0]
  assert float(loss) > float(rows) + 1e-3  # the L2 term is not negligible


def test_parameter_norms():
  params = models.MFParams(jnp.array([[3.0, 4.0], [0.0, 0.0]]),
                           jnp.array([[1.0, 0.0]]), jnp.float32(0.0))
  norms = train.parameter_norms(params)
  assert float(norms["user_norm"]) == 2.5 and float(norms["item_norm"]) == 1.0
  assert float(norms["kernel_norm"]) == 0.0
