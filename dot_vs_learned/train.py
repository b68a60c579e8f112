"""Training of MF with biases by SGD on the logistic loss (paper App. A.1).

One epoch walks a shuffled stream of N * (1 + m) examples: each of the N
training positives once with label 1, followed in the unshuffled stream by m
negatives of the same user whose items are drawn uniformly from all items
(fresh every epoch, as the reference code: a sampled negative may be a positive
of the user). The stream is shuffled by a keyed pseudo-random permutation that
is computed on the fly, so no N * (1 + m) array is sorted or stored.

Update rules of App. A.1, with g = y - sigmoid(score) and learning rate eta:
  p_u <- p_u + eta * (g * [1, q_i,2..d] - lambda * p_u)
  q_i <- q_i + eta * (g * [1, p_u,2..d] - lambda * q_i)
  b   <- b   + eta * (g - lambda * b)
Two optimizers apply them:
  * `exact`: plain per-example SGD in shuffled order. The stream is cut into
    windows of W examples; inside a window, examples are applied in waves: a
    wave holds every not-yet-applied example whose user and item are not used
    by an earlier not-yet-applied example of the window. Examples of one wave
    touch disjoint rows, so applying them at once equals applying them one by
    one in stream order. The one difference is the global bias b, which every
    example touches: a wave updates it once with the wave's summed gradient.
  * `batched`: sparse minibatch SGD. A batch of B examples is scored with the
    parameters at the start of the batch, and the B per-example updates are
    added (rows used twice get both updates).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dot_vs_learned import evaluate
from dot_vs_learned import models


class Hparams(NamedTuple):
  learning_rate: jax.Array  # eta of App. A.1.
  reg: jax.Array  # lambda of App. A.1.


class TrainState(NamedTuple):
  params: models.MFParams
  key: jax.Array  # typed PRNG key; one split per epoch.
  epoch: jax.Array  # epochs done.


class Batch(NamedTuple):
  users: jax.Array  # [B] int32
  items: jax.Array  # [B] int32
  labels: jax.Array  # [B] float32, 1 for positives
  weights: jax.Array  # [B] float32, 0 for padding past the end of the epoch


# A 4-round Feistel network on 2 * half bits is a keyed permutation of
# [0, 4^half); cycle walking restricts it to [0, n) (Luby-Rackoff).
def _mix32(x):
  x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
  x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def permute(positions, round_keys, n) -> jax.Array:
  """Maps positions in [0, n) to a keyed pseudo-random permutation of [0, n)."""
  half = max(1, (int(n - 1).bit_length() + 1) // 2)
  mask = jnp.uint32((1 << half) - 1)

  def feistel(x):
    left, right = x >> half, x & mask
    for r in range(round_keys.shape[0]):
      left, right = right, left ^ (_mix32(right ^ round_keys[r]) & mask)
    return (left << half) | right

  x = feistel(positions.astype(jnp.uint32))
  x = jax.lax.while_loop(lambda x: jnp.any(x >= n),
                         lambda x: jnp.where(x >= n, feistel(x), x), x)
  return x.astype(jnp.int32)


def make_batch(train_users, train_items, num_items, num_negatives, positions,
               round_keys, neg_key) -> Batch:
  """The examples at `positions` of the shuffled stream of one epoch."""
  n = train_users.shape[0] * (1 + num_negatives)
  valid = positions < n
  example = permute(jnp.where(valid, positions, 0), round_keys, n)
  positive, slot = jnp.divmod(example, 1 + num_negatives)
  negative_items = jax.random.randint(neg_key, positions.shape, 0, num_items)
  items = jnp.where(slot == 0, train_items[positive], negative_items)
  return Batch(train_users[positive], items, (slot == 0).astype(jnp.float32),
               valid.astype(jnp.float32))


def _example_row_updates(emb_u_BxD, emb_i_BxD, bias, batch, hp):
  """Per-example gradients g, row updates and logistic losses of a batch."""
  logits_B = models.mf_logits(emb_u_BxD, emb_i_BxD, bias)
  g_B = (batch.labels - jax.nn.sigmoid(logits_B)) * batch.weights
  # d score / d p_u is [1, q_i,2..d]: the bias column sees a constant 1.
  ones_B = jnp.ones_like(g_B)[:, None]
  grad_u_BxD = jnp.concatenate([ones_B, emb_i_BxD[:, 1:]], axis=1)
  grad_i_BxD = jnp.concatenate([ones_B, emb_u_BxD[:, 1:]], axis=1)
  w_Bx1 = batch.weights[:, None]
  eta = hp.learning_rate
  delta_u = eta * (g_B[:, None] * grad_u_BxD - hp.reg * emb_u_BxD * w_Bx1)
  delta_i = eta * (g_B[:, None] * grad_i_BxD - hp.reg * emb_i_BxD * w_Bx1)
  loss_B = (jax.nn.softplus(logits_B) - batch.labels * logits_B) * batch.weights
  return g_B, delta_u, delta_i, loss_B


def train_step(params, batch, hp) -> tuple[models.MFParams, jax.Array]:
  """Batched SGD: B per-example updates from the same parameters, summed."""
  g_B, delta_u, delta_i, loss_B = _example_row_updates(
      params.user[batch.users], params.item[batch.items], params.bias, batch,
      hp)
  count = jnp.sum(batch.weights)
  bias = params.bias + hp.learning_rate * (jnp.sum(g_B) - hp.reg * count *
                                           params.bias)
  return models.MFParams(params.user.at[batch.users].add(delta_u),
                         params.item.at[batch.items].add(delta_i),
                         bias), jnp.sum(loss_B)


def exact_step(params, batch, hp) -> tuple[models.MFParams, jax.Array]:
  """Per-example SGD over a window, applied in conflict-free waves.

  The window's rows are gathered once into a local table with one slot per
  distinct user (item): the slot of its first occurrence in the window. The
  waves update the local tables only, and the final rows are written back
  once, so no loop iteration touches the full embedding tables.
  """
  size = batch.users.shape[0]
  same_user_WxW = batch.users[:, None] == batch.users[None, :]
  same_item_WxW = batch.items[:, None] == batch.items[None, :]
  earlier_WxW = jnp.tril(jnp.ones((size, size), bool), -1)
  conflict_WxW = earlier_WxW & (same_user_WxW | same_item_WxW)
  slot_u = jnp.argmax(same_user_WxW, axis=1)  # first occurrence
  slot_i = jnp.argmax(same_item_WxW, axis=1)
  local = models.MFParams(params.user[batch.users], params.item[batch.items],
                          params.bias)

  def wave(carry):
    local, done, loss = carry
    ready = ~done & ~jnp.any(conflict_WxW & ~done[None, :], axis=1)
    wave_batch = batch._replace(weights=batch.weights * ready)
    g_B, delta_u, delta_i, loss_B = _example_row_updates(
        local.user[slot_u], local.item[slot_i], local.bias, wave_batch, hp)
    # Sequential updates of b shrink it by (1 - eta * lambda) per example.
    decay = (1.0 - hp.learning_rate * hp.reg) ** jnp.sum(wave_batch.weights)
    local = models.MFParams(local.user.at[slot_u].add(delta_u),
                            local.item.at[slot_i].add(delta_i),
                            local.bias * decay + hp.learning_rate * jnp.sum(g_B))
    return local, done | ready, loss + jnp.sum(loss_B)

  local, _, loss = jax.lax.while_loop(
      lambda carry: ~jnp.all(carry[1]), wave,
      (local, batch.weights == 0, jnp.zeros((), jnp.float32)))
  # Copies of a row all write its slot's final value, so duplicates agree.
  return models.MFParams(params.user.at[batch.users].set(local.user[slot_u]),
                         params.item.at[batch.items].set(local.item[slot_i]),
                         local.bias), loss


def make_epoch(config, num_items, num_train):
  """Returns epoch(state, train_users, train_items, hp) -> (state, mean loss)."""
  num_negatives = config.train.num_negatives
  exact = config.train.optimizer == "exact"
  size = config.train.window if exact else config.train.batch_size
  step_fn = exact_step if exact else train_step
  n = num_train * (1 + num_negatives)
  num_steps = -(-n // size)

  def epoch(state, train_users, train_items, hp):
    key, perm_key, neg_key = jax.random.split(state.key, 3)
    round_keys = jax.random.bits(perm_key, (4,), jnp.uint32)

    def body(params, step):
      positions = step * size + jnp.arange(size, dtype=jnp.int32)
      batch = make_batch(train_users, train_items, num_items, num_negatives,
                         positions, round_keys, jax.random.fold_in(neg_key, step))
      return step_fn(params, batch, hp)

    params, losses = jax.lax.scan(body, state.params,
                                  jnp.arange(num_steps, dtype=jnp.int32))
    return TrainState(params, key, state.epoch + 1), jnp.sum(losses) / n

  return epoch


def init_state(key, config, num_users, num_items) -> TrainState:
  """Initial parameters and training key of one seed."""
  init_key, train_key = jax.random.split(key)
  params = models.init_mf(init_key, num_users, num_items, config.model.dim,
                          config.train.init_stddev)
  return TrainState(params, train_key, jnp.zeros((), jnp.int32))


def make_train(config, data):
  """Builds the jitted programs of one run for the config and dataset.

  Returns:
    init(key) -> TrainState, and run(state, num_epochs) -> (state, metrics),
    which trains num_epochs epochs then evaluates; both vmapped over a leading
    seed axis of the keys and states.
  """
  train_users = jnp.asarray(data.train_users)
  train_items = jnp.asarray(data.train_items)
  test_items = jnp.asarray(data.test_items)
  negatives = jnp.asarray(data.test_negatives)
  mask = jnp.asarray(evaluate.candidate_mask(data.test_items,
                                             data.test_negatives))
  hp = Hparams(jnp.float32(config.train.learning_rate),
               jnp.float32(config.train.reg))
  epoch = make_epoch(config, data.num_items, data.train_users.shape[0])
  k = config.eval.k

  init = functools.partial(init_state, config=config,
                           num_users=data.num_users, num_items=data.num_items)

  def run_one(state, arrays, num_epochs):
    users, items, test, negs, msk = arrays
    state, losses = jax.lax.scan(
        lambda s, _: epoch(s, users, items, hp), state, None, length=num_epochs)
    metrics = evaluate.sampled_metrics(models.mf_score, state.params, test,
                                       negs, msk, k)
    return state, dict(metrics, loss=losses[-1])

  @functools.partial(jax.jit, static_argnums=(2,), donate_argnums=(0,))
  def run_all(states, arrays, num_epochs):
    if jax.tree.leaves(states)[0].shape[0] == 1:
      # XLA:CPU runs a scatter vmapped over one seed about 2x slower than the
      # plain scatter, so a single seed skips the vmap.
      state, metrics = run_one(jax.tree.map(lambda x: x[0], states), arrays,
                               num_epochs)
      return jax.tree.map(lambda x: x[None], (state, metrics))
    return jax.vmap(run_one, in_axes=(0, None, None))(states, arrays,
                                                      num_epochs)

  arrays = (train_users, train_items, test_items, negatives, mask)
  return jax.jit(jax.vmap(init)), lambda s, e: run_all(s, arrays, e)


def popularity_metrics(data, k) -> dict[str, float]:
  """HR@k and NDCG@k of ranking items by their training count."""
  counts = jnp.asarray(models.popularity_counts(data.train_items,
                                                data.num_items))
  mask = evaluate.candidate_mask(data.test_items, data.test_negatives)
  metrics = evaluate.sampled_metrics(models.popularity_score, counts,
                                     jnp.asarray(data.test_items),
                                     jnp.asarray(data.test_negatives),
                                     jnp.asarray(mask), k)
  return {name: float(value) for name, value in metrics.items()}
