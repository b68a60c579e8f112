"""MF with biases trained by the SGD of paper App. A.1: `exact` and `batched`.

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

import jax
import jax.numpy as jnp

from dot_vs_learned import models


def _example_row_updates(emb_u_BxD, emb_i_BxD, bias, batch, hp):
  """Per-example gradients g, row updates and logistic losses of a batch."""
  logits_B = models.mf_logits(emb_u_BxD, emb_i_BxD, bias)
  g_B = (batch.labels - jax.nn.sigmoid(logits_B)) * batch.weights
  # d score / d p_u is [1, q_i,2..d]: the bias column sees a constant 1.
  grad_u_BxD = models.with_unit_bias(emb_i_BxD)
  grad_i_BxD = models.with_unit_bias(emb_u_BxD)
  w_Bx1 = batch.weights[:, None]
  eta = hp.learning_rate
  delta_u = eta * (g_B[:, None] * grad_u_BxD - hp.reg * emb_u_BxD * w_Bx1)
  delta_i = eta * (g_B[:, None] * grad_i_BxD - hp.reg * emb_i_BxD * w_Bx1)
  loss_B = models.logistic_loss(logits_B, batch.labels) * batch.weights
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
