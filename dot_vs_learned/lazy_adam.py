"""Lazy (sparse) Adam: the embedding rows a batch does not use stay as they are.

Dense Adam (NCF's, optax.scale_by_adam) moves every row of every embedding
table at every step: its moments decay and the row keeps moving by its
momentum, though the batch holds only a few hundred of its rows. The step
then costs O(table) however small the batch, and a catalogue of 40k items
makes an epoch 4x slower than one of 4k at the same interactions (issue 16).
Here, as TensorFlow's LazyAdam, the rows of the user and item tables that
the batch uses get Adam's update (moments, bias correction at the global
step count, the step), and the others are left untouched; the layer weights
(kernels, biases) get dense Adam. A row used several times in a batch gets
one update from its summed gradient. Optimizer state: optax's
ScaleByAdamState, so checkpoints keep their layout.

The gradient is taken with respect to the batch's rows (`rows`), one per
example, not the tables: a table-shaped gradient is a zeroed table per step,
which on Gowalla's 41k items cost more than the rest of a GMF step.
"""

import flax
import jax
import jax.numpy as jnp
import optax

from dot_vs_learned import models

B1, B2, EPS = 0.9, 0.999, 1e-8  # optax.scale_by_adam's defaults


def init(params) -> optax.ScaleByAdamState:
  return optax.scale_by_adam(b1=B1, b2=B2, eps=EPS).init(params)


def _row_ids(params, users, items):
  """The tree of params with, per leaf, the ids of the rows a batch uses
  (user or item tables) or None (a dense leaf)."""
  if isinstance(params, models.MFParams):
    return models.MFParams(user=users, item=items, bias=None)
  flat = flax.traverse_util.flatten_dict(params)
  return flax.traverse_util.unflatten_dict(
      {path: (users if path[-2:] == ("user", "embedding") else
              items if path[-2:] == ("item", "embedding") else None)
       for path in flat})


def rows(params, users, items):
  """params with each user and item table replaced by its rows at the
  batch's ids, [B, d] each (one per example, repeats included): what `step`
  takes the gradient of. The model scores them as a model of B users and B
  items, example b being user b and item b."""
  ids = _row_ids(params, users, items)
  leaves, treedef = jax.tree.flatten(params)
  return treedef.unflatten([
      p if i is None else p.at[i].get(mode="fill", fill_value=0.0)
      for p, i in zip(leaves, treedef.flatten_up_to(ids))])


def step(params, state, grads, users, items, used, learning_rate):
  """One lazy Adam step; returns (params, state). `grads`: the gradient of
  the batch's loss with respect to `rows(params, users, items)`. `used` [B]
  is False for the batch's padding (examples of weight 0), whose rows stay
  untouched."""
  count = optax.safe_increment(state.count)
  c1 = 1 - B1 ** count.astype(jnp.float32)
  c2 = 1 - B2 ** count.astype(jnp.float32)

  def update(p, g, m, v, ids):
    if ids is None:  # dense Adam
      m = B1 * m + (1 - B1) * g
      v = B2 * v + (1 - B2) * g * g
      return p - learning_rate * (m / c1) / (jnp.sqrt(v / c2) + EPS), m, v
    # One slot of the batch stands for each row: the gradients of a row's
    # examples are summed there, and only that slot writes the row.
    # Padding's ids point past the table: their writes are dropped.
    num_rows, slots = p.shape[0], jnp.arange(ids.shape[0])
    ids = jnp.where(used, ids, num_rows)
    owner = jnp.zeros((num_rows + 1,), slots.dtype).at[ids].set(slots)[ids]
    g_r = jax.ops.segment_sum(g, owner, num_segments=ids.shape[0])
    m_r = B1 * m.at[ids].get(mode="fill", fill_value=0.0) + (1 - B1) * g_r
    v_r = (B2 * v.at[ids].get(mode="fill", fill_value=0.0) +
           (1 - B2) * g_r * g_r)
    p_r = (p.at[ids].get(mode="fill", fill_value=0.0) -
           learning_rate * (m_r / c1) / (jnp.sqrt(v_r / c2) + EPS))
    write = jnp.where(owner == slots, ids, num_rows)
    return tuple(x.at[write].set(x_r, mode="drop")
                 for x, x_r in ((p, p_r), (m, m_r), (v, v_r)))

  ids = _row_ids(params, users, items)
  leaves, treedef = jax.tree.flatten(params)
  flat_ids = treedef.flatten_up_to(ids)
  out = [update(p, g, m, v, i) for p, g, m, v, i in zip(
      leaves, treedef.flatten_up_to(grads), treedef.flatten_up_to(state.mu),
      treedef.flatten_up_to(state.nu), flat_ids)]
  params, mu, nu = (treedef.unflatten([o[j] for o in out]) for j in range(3))
  return params, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)
