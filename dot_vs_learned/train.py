"""Training and evaluation of every model on the NCF protocol.

Models differ only in the similarity function (paper §3.2). Two recipes:
  * MF with biases trained by the SGD of App. A.1 (`exact` or `batched`,
    sgd.py), as Rendle et al. 2020;
  * any model (MF, GMF, MLP, NeuMF) trained on the mean logistic loss of a
    minibatch plus L2 on the embedding rows it uses and on the layer weights,
    by Adam (`adam`) as NCF (He et al. 2017), by lazy Adam (`lazy_adam`:
    only the embedding rows a batch uses move; lazy_adam.py), or by plain
    minibatch gradient descent (`sgd`), which NCF uses to fine-tune a
    pretrained NeuMF.
An epoch is one `lax.scan` over the shuffled stream of stream.py; a run
trains `num_epochs` epochs, then evaluates, its seeds vmapped, or on CPU
one after another (POINT_LOOPS).
"""

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from dot_vs_learned import distributed
from dot_vs_learned import evaluate
from dot_vs_learned import lazy_adam
from dot_vs_learned import models
from dot_vs_learned import sgd
from dot_vs_learned import stream


class Hparams(NamedTuple):
  """The scalar hyperparameters a sweep vmaps over (one per point)."""
  learning_rate: jax.Array  # eta.
  reg: jax.Array  # lambda: L2 on the embedding rows an example uses.


class TrainState(NamedTuple):
  params: Any  # models.MFParams or a flax parameter dict.
  opt_state: Any  # Adam's moments; () for SGD.
  key: jax.Array  # typed PRNG key; one split per epoch.
  epoch: jax.Array  # epochs done.


def _tables(params, suffix):
  """The parameter arrays whose flattened path ends with `suffix`."""
  if isinstance(params, models.MFParams):
    fields = {("user", "embedding"): [params.user],
              ("item", "embedding"): [params.item]}
    return fields.get(suffix, [])
  flat = flax.traverse_util.flatten_dict(params["params"])
  return [v for k, v in flat.items() if k[-len(suffix):] == suffix]


def parameter_norms(params) -> dict[str, jax.Array]:
  """Mean L2 norm of user and item embedding rows, and the kernels' norm.

  They show §3.3.3's drift: with L2 on P and Q but not on w, GMF's
  embeddings shrink while w grows.
  """
  def mean_row_norm(tables):
    return sum(jnp.mean(jnp.linalg.norm(t, axis=-1)) for t in tables)

  kernels = _tables(params, ("kernel",))
  return {"user_norm": mean_row_norm(_tables(params, ("user", "embedding"))),
          "item_norm": mean_row_norm(_tables(params, ("item", "embedding"))),
          "kernel_norm": jnp.sqrt(sum(jnp.sum(k ** 2) for k in kernels))}


def _row_l2(params, batch):
  """Per example: squared norms of the embedding rows it uses (all tables)."""
  users = sum(jnp.sum(t[batch.users] ** 2, axis=-1)
              for t in _tables(params, ("user", "embedding")))
  items = sum(jnp.sum(t[batch.items] ** 2, axis=-1)
              for t in _tables(params, ("item", "embedding")))
  return users + items


def minibatch_loss(score, config, params, batch, hp):
  """NCF's objective on a batch: mean logistic loss plus L2 terms.

  Returns the loss and, for reporting, the summed logistic loss.
  """
  logits = score(params, batch.users, batch.items)
  logistic = models.logistic_loss(logits, batch.labels) * batch.weights
  count = jnp.maximum(jnp.sum(batch.weights), 1.0)
  rows = hp.reg * jnp.sum(_row_l2(params, batch) * batch.weights) / count
  kernels = sum(jnp.sum(k ** 2) for k in _tables(params, ("kernel",)))
  loss = jnp.sum(logistic) / count + rows + config.train.l2_weights * kernels
  return loss, jnp.sum(logistic)


def make_gradient_step(score, config):
  """Returns init(params) -> optimizer state, and the `adam`/`lazy_adam`/
  `sgd` step. `lazy_adam` scores the batch's rows with the config's model
  built for B users and B items (models.make_model), not with `score`."""
  loss_fn = functools.partial(minibatch_loss, score, config)
  if config.train.optimizer == "lazy_adam":

    def lazy_step(params, opt_state, batch, hp):
      # The loss of the batch's rows, scored as a model of B users and B
      # items where example b is user b and item b.
      size = batch.users.shape[0]
      rows_score = models.make_model(config, size, size)[1]
      slots = jnp.arange(size, dtype=batch.users.dtype)
      grads, loss_sum = jax.grad(
          functools.partial(minibatch_loss, rows_score, config),
          has_aux=True)(lazy_adam.rows(params, batch.users, batch.items),
                        batch._replace(users=slots, items=slots), hp)
      params, opt_state = lazy_adam.step(params, opt_state, grads,
                                         batch.users, batch.items,
                                         batch.weights > 0, hp.learning_rate)
      return params, opt_state, loss_sum

    return lazy_adam.init, lazy_step
  direction = (optax.scale_by_adam() if config.train.optimizer == "adam" else
               optax.identity())

  def step(params, opt_state, batch, hp):
    grads, loss_sum = jax.grad(loss_fn, has_aux=True)(params, batch, hp)
    updates, opt_state = direction.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p - hp.learning_rate * u, params,
                          updates)
    return params, opt_state, loss_sum

  return direction.init, step


def make_epoch(config, num_items, num_train, score=models.mf_score):
  """Returns epoch(state, train_users, train_items, hp) -> (state, mean loss)."""
  num_negatives = config.train.num_negatives
  optimizer = config.train.optimizer
  size = config.train.window if optimizer == "exact" else (
      config.train.batch_size)
  if optimizer in ("adam", "lazy_adam", "sgd"):
    _, step_fn = make_gradient_step(score, config)
  else:
    sgd_step = sgd.exact_step if optimizer == "exact" else sgd.train_step

    def step_fn(params, opt_state, batch, hp):
      params, loss = sgd_step(params, batch, hp)
      return params, opt_state, loss
  n = num_train * (1 + num_negatives)
  num_steps = -(-n // size)

  def epoch(state, train_users, train_items, hp):
    key, perm_key, neg_key = jax.random.split(state.key, 3)
    round_keys = jax.random.bits(perm_key, (4,), jnp.uint32)

    def batch_at(step):
      positions = step * size + jnp.arange(size, dtype=jnp.int32)
      return stream.make_batch(train_users, train_items, num_items,
                               num_negatives, positions, round_keys,
                               jax.random.fold_in(neg_key, step))

    def body(carry, step):
      # Step `step` trains on the batch made by the step before and makes
      # the next one: the two are independent, so XLA:CPU can run them on
      # different cores (the last batch made is past the end, all padding).
      params, opt_state, batch = carry
      params, opt_state, loss = step_fn(params, opt_state, batch, hp)
      return (params, opt_state, batch_at(step + 1)), loss

    (params, opt_state, _), losses = jax.lax.scan(
        body, (state.params, state.opt_state, batch_at(0)),
        jnp.arange(num_steps, dtype=jnp.int32))
    return TrainState(params, opt_state, key, state.epoch + 1), (
        jnp.sum(losses) / n)

  return epoch


def init_state(key, config, num_users, num_items, params=None,
               stddev=None) -> TrainState:
  """Initial state of one seed; `params` replaces the random initialization,
  `stddev` the configured init scale (models.make_model)."""
  init_key, train_key = jax.random.split(key)
  init, score = models.make_model(config, num_users, num_items)
  params = init(init_key, stddev) if params is None else params
  opt_state = (make_gradient_step(score, config)[0](params)
               if config.train.optimizer in ("adam", "lazy_adam", "sgd")
               else ())
  return TrainState(params, opt_state, train_key, jnp.zeros((), jnp.int32))


def config_hparams(config, count) -> Hparams:
  """The config's learning rate and lambda, repeated for `count` points."""
  return Hparams(
      jnp.full((count,), config.train.learning_rate, jnp.float32),
      jnp.full((count,), config.train.reg, jnp.float32))


# How a device runs its points (seeds, a sweep's points): "vmap" as one
# batched program, "map" one after another in a compiled loop (lax.map):
# on XLA:CPU the faster, by up to 2.3x (docs/results.md, "Seeds one after
# another"), and bit for bit the single runs. Accelerators: "vmap".
POINT_LOOPS = ("vmap", "map")


def default_point_loop(mesh=None) -> str:
  """"map" on CPU, "vmap" on accelerators (POINT_LOOPS)."""
  device = mesh.devices.flat[0] if mesh is not None else jax.devices()[0]
  return "map" if device.platform == "cpu" else "vmap"


def make_train(config, data, mesh=None, point_loop=None):
  """Builds the jitted programs of one run for the config and dataset.

  Returns:
    init(keys, params=None, stddevs=None) -> TrainState, and
    run(states, num_epochs, hps=None) -> (states, metrics), which trains
    num_epochs epochs then evaluates (the sampled "hr", "ndcg" and "rank";
    none for item lists, which the caller ranks fully: ncf_eval.py). Both
    work over a leading axis of points: seeds, or (hyperparameter, seed)
    pairs of a sweep, vmapped.
    params: per-point initial parameters (e.g. pretrained); stddevs: per-point
    init scales (MF); hps: per-point Hparams (default: the config's).
    mesh: a 1-D jax.sharding.Mesh (distributed.point_mesh); with axis "points" the
    point axis is sharded over its devices (its length must be a multiple
    of their number), with axis "replicas" every device computes every
    point; the data is replicated.
    point_loop: how a device runs its points, "vmap" or "map" (POINT_LOOPS);
    None: default_point_loop(mesh).
  """
  point_loop = point_loop or default_point_loop(mesh)
  if point_loop not in POINT_LOOPS:
    raise ValueError(f"train.make_train: point_loop={point_loop!r}: must be "
                     f"one of {POINT_LOOPS}")
  arrays = (data.train_users, data.train_items, *evaluate.test_arrays(data))
  points = whole = None
  if mesh is None:
    arrays = tuple(jnp.asarray(a) for a in arrays)
    place = lambda tree: tree
  else:
    axis = mesh.axis_names[0]
    whole = jax.sharding.PartitionSpec()
    points = jax.sharding.PartitionSpec(axis) if axis == "points" else whole
    replicated = jax.sharding.NamedSharding(mesh, whole)
    split = jax.sharding.NamedSharding(mesh, points)
    arrays = distributed.to_global(arrays, replicated)
    place = lambda tree: distributed.to_global(tree, split)
  _, score = models.make_model(config, data.num_users, data.num_items)
  epoch = make_epoch(config, data.num_items, data.train_users.shape[0], score)
  k = config.eval.k

  def init_one(key, stddev, params):
    return init_state(key, config, data.num_users, data.num_items, params,
                      stddev)

  def run_one(state, hp, arrays, num_epochs):
    users, items, *test = arrays
    state, losses = jax.lax.scan(
        lambda s, _: epoch(s, users, items, hp), state, None, length=num_epochs)
    metrics = evaluate.metrics_of(score, state.params, test, k)
    return state, dict(metrics, loss=losses[-1],
                       **parameter_norms(state.params))

  def run_local(states, hps, arrays, num_epochs):
    one = lambda point: run_one(*point, arrays, num_epochs)
    if point_loop == "map" or jax.tree.leaves(states)[0].shape[0] == 1:
      # A single point is not vmapped either: XLA:CPU ran a scatter vmapped
      # over one seed about 2x slower than the plain scatter.
      return jax.lax.map(one, (states, hps))
    return jax.vmap(one)((states, hps))

  @functools.partial(jax.jit, static_argnums=(3,), donate_argnums=(0,))
  def run_all(states, hps, arrays, num_epochs):
    if mesh is None:
      return run_local(states, hps, arrays, num_epochs)
    # Each device trains its own points with no communication; shard_map
    # states that rather than leaving it to the partitioner.
    return jax.shard_map(
        functools.partial(run_local, num_epochs=num_epochs), mesh=mesh,
        in_specs=(points, points, whole), out_specs=points)(states, hps,
                                                             arrays)

  init_with = jax.jit(jax.vmap(init_one))
  init_fresh = jax.jit(jax.vmap(lambda key, stddev: init_one(key, stddev,
                                                             None)))

  def init(keys, params=None, stddevs=None):
    if stddevs is None:
      stddevs = jnp.full((len(keys),), config.train.init_stddev, jnp.float32)
    keys, stddevs = place(keys), place(jnp.asarray(stddevs, jnp.float32))
    # Placed as run's outputs are, so that run compiles once, not twice.
    if params is None:
      return place(init_fresh(keys, stddevs))
    return place(init_with(keys, stddevs, place(params)))

  def run(states, num_epochs, hps=None):
    count = jax.tree.leaves(states)[0].shape[0]
    hps = config_hparams(config, count) if hps is None else hps
    return run_all(states, place(hps), arrays, num_epochs)

  return init, run
