"""Seed i of an n-seed run is the single run of key i, for every model.

Both get the same key, initial parameters and batches. On CPU a device runs
its seeds one after another (train.POINT_LOOPS, "map"), the single run's
program in a loop: the same bits. Vmapped ("vmap", the accelerators'
default) they are two XLA programs (a single point is never vmapped,
train.make_train), which round differently: XLA rewrites Adam's bias
correction one way when the step count is a scalar and another when it is
a per-seed vector, and sums a batch in another order when it carries a
seed axis (MF's SGD happens to give the same bits). After one step that is
at most 1 ulp of a parameter. A learned model can amplify it to a seed's
worth: a ReLU pre-activation that cancels to within 2 ulps of its terms
(seen at the 4th batch on a 30-user set) is 0 in one program and positive
in the other, so one passes an example's gradient that the other drops,
and Adam turns any gradient gap into a step of order the learning rate. So
these tests train one short epoch (6 batches), where the gap is still
rounding.
"""

import functools

import jax
import numpy as np
import pytest

from dot_vs_learned import datasets
from dot_vs_learned import models
from dot_vs_learned import ncf_config
from dot_vs_learned import train

NUM_SEEDS = 3
# Of a leaf's largest magnitude: about 80 float32 ulps (eps = 1.2e-7), where
# the epoch here measures at most 7e-8 (gmf, mlp, neumf) and 0 (MF's SGD).
# Another seed's batches move the parameters by 4e-2 of their scale or more.
TOLERANCE = 1e-5
MODELS = ("mf/batched", "mf/exact", "gmf", "mlp", "neumf")
EACH_MODEL = [  # the slow pass runs MLP and NeuMF
    pytest.param(m, marks=pytest.mark.slow) if m in ("mlp", "neumf") else m
    for m in MODELS]


@functools.cache
def tiny_data():
  # 12 users with 20 to 30 items each: an epoch is 6 batches of NCF's 256.
  return datasets.generate_default(num_users=12, num_items=40, seed=2,
                                   num_negatives=10)


def make_config(model):
  """A tiny config of `model`: "mf/<SGD of App. A.1>" or a learned model."""
  config = ncf_config.default_config()
  name, _, optimizer = model.partition("/")
  if optimizer:
    config.train.update(optimizer=optimizer, learning_rate=0.05,
                        num_negatives=4, batch_size=128, window=32)
  else:  # NCF's recipe: Adam at 0.001, batches of 256, 4 negatives
    ncf_config.use_ncf_recipe(config, name)
  config.model.dim = 12 if name == "neumf" else 8  # NeuMF: d = 3k
  ncf_config.validate(config)
  return config


def initial_params(config, data):
  """Per-seed initial parameters from numpy, N(0, 0.05^2) for every leaf.

  init(keys, params) then skips the random initialization, whose XLA:CPU
  compile takes seconds; a test below covers that path.
  """
  init, _ = models.make_model(config, data.num_users, data.num_items)
  shapes = jax.eval_shape(init, jax.random.key(0))
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: rng.normal(
      0, 0.05, (NUM_SEEDS,) + s.shape).astype(np.float32), shapes)


def host(tree):
  """A host copy (keys as their data): run() donates the states it gets."""
  def copy(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    return np.array(x, copy=True)
  return jax.tree.map(copy, tree)


def seed(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def max_gap(a, b):
  """Over the leaves: max |a - b| over the leaf's largest magnitude in a."""
  return max(float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-30))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@functools.cache
def one_epoch(model, point_loop):
  """(params, metrics) after one epoch: the n-seed run, then per seed the
  single run, then per seed the single run with the next seed's key."""
  data, config = tiny_data(), make_config(model)
  init, run = train.make_train(config, data, point_loop=point_loop)
  keys = jax.random.split(jax.random.key(11), NUM_SEEDS)
  params = initial_params(config, data)
  trained = lambda state: host(run(state, 1))
  vmapped = trained(init(keys, params))
  single = [trained(init(keys[i:i + 1], seed(params, slice(i, i + 1))))
            for i in range(NUM_SEEDS)]
  other_key = [trained(init(keys[i + 1:i + 2], seed(params, slice(i, i + 1))))
               for i in range(NUM_SEEDS - 1)]
  return ([(seed(vmapped[0].params, i), seed(vmapped[1], i))
           for i in range(NUM_SEEDS)],
          [(seed(s.params, 0), seed(m, 0)) for s, m in single],
          [seed(s.params, 0) for s, _ in other_key])


def test_seed_i_of_a_split_is_the_key_of_its_single_run():
  # ncf trains seed i with split(key(train.seed), n)[i]: the first m keys of
  # a split into n are the split into m (JAX's partitionable threefry), so
  # the single run (num_seeds=1) is seed 0 of every n-seed run.
  root = jax.random.key(11)
  keys = jax.random.key_data(jax.random.split(root, 5))
  for m in (1, 2, 3):
    np.testing.assert_array_equal(
        keys[:m], jax.random.key_data(jax.random.split(root, m)))


def test_vmapped_seed_starts_from_its_single_runs_parameters():
  # The fresh init is vmapped for one seed too: the same program draws both,
  # where a wrong key would differ by the whole scale. GMF stands for every
  # model: their inits share this path (each one's init XLA:CPU compile
  # takes seconds).
  init, _ = train.make_train(make_config("gmf"), tiny_data())
  keys = jax.random.split(jax.random.key(11), NUM_SEEDS)
  states = host(init(keys))
  for i in range(NUM_SEEDS):
    single = host(init(keys[i:i + 1]))
    assert max_gap(seed(states.params, i), seed(single.params, 0)) <= 1e-6
    np.testing.assert_array_equal(states.key[i], single.key[0])


def test_the_default_point_loop_is_map_on_cpu():
  assert jax.devices()[0].platform == "cpu"
  assert train.default_point_loop() == "map"
  with pytest.raises(ValueError, match="point_loop='scan': must be one of"):
    train.make_train(make_config("mf/batched"), tiny_data(),
                     point_loop="scan")


@pytest.mark.parametrize("model", EACH_MODEL)
def test_mapped_seed_is_its_single_run_bit_for_bit(model):
  mapped, single, other_key = one_epoch(model, "map")
  for i in range(NUM_SEEDS):
    for a, b in zip(jax.tree.leaves(mapped[i]), jax.tree.leaves(single[i])):
      np.testing.assert_array_equal(a, b)
  for i in range(NUM_SEEDS - 1):
    assert max_gap(other_key[i], mapped[i][0]) > 100 * TOLERANCE, (model, i)


@pytest.mark.parametrize("model", EACH_MODEL)
def test_vmapped_seed_equals_its_single_run_after_an_epoch(model):
  vmapped, single, other_key = one_epoch(model, "vmap")
  num_users = tiny_data().num_users
  for i in range(NUM_SEEDS):
    (params, metrics), (single_params, single_metrics) = vmapped[i], single[i]
    assert max_gap(single_params, params) <= TOLERANCE, (model, i)
    np.testing.assert_allclose(metrics["loss"], single_metrics["loss"],
                               rtol=TOLERANCE)
    # A hit flips only where two candidates' scores tie to within rounding.
    np.testing.assert_allclose(metrics["hr"], single_metrics["hr"],
                               atol=1.0 / num_users)
  for i in range(NUM_SEEDS - 1):
    # Not vacuous: the same start with another seed's batches is far.
    assert max_gap(other_key[i], vmapped[i][0]) > 100 * TOLERANCE, (model, i)
