"""The training stream of one epoch (paper App. A.1, NCF §4.1).

One epoch walks a shuffled stream of N * (1 + m) examples: each of the N
training positives once with label 1, followed in the unshuffled stream by m
negatives of the same user whose items are drawn uniformly from all items
(fresh every epoch, as the reference code: a sampled negative may be a positive
of the user). The stream is shuffled by a keyed pseudo-random permutation that
is computed on the fly, so no N * (1 + m) array is sorted or stored.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Batch(NamedTuple):
  users: jax.Array  # [B] int32
  items: jax.Array  # [B] int32
  labels: jax.Array  # [B] float32, 1 for positives
  weights: jax.Array  # [B] float32, 0 for padding past the end of the epoch


def _mix32(x):
  x = (x ^ (x >> 16)) * jnp.uint32(0x7FEB352D)
  x = (x ^ (x >> 15)) * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def permute(positions, round_keys, n) -> jax.Array:
  """Maps positions in [0, n) to a keyed pseudo-random permutation of [0, n).

  A Feistel network on mixed radix (FE1, Bellare, Ristenpart, Rogaway and
  Stegers 2009) permutes [0, a * b), a = ceil(sqrt(n)), b = ceil(n / a): a
  round (one per round key) writes x = L * q + R (L < p, R < q) as R * p +
  (L + F(R)) mod p, a bijection of [0, a * b), and swaps the radices (p, q)
  for the next. Cycle walking restricts it to [0, n): since
  a * b - n < a, a position walks again with probability below 1 /
  sqrt(n), so the loop almost never runs. (A power-of-two domain can be
  nearly twice n, and each walk then costs the whole batch another pass.)
  """
  a = math.isqrt(n - 1) + 1  # n >= 1
  b = -(-n // a)

  def feistel(x):
    p, q = a, b
    for r in range(round_keys.shape[0]):
      left, right = x // jnp.uint32(q), x % jnp.uint32(q)
      mixed = _mix32(right ^ round_keys[r]) % jnp.uint32(p)
      x = right * jnp.uint32(p) + (left + mixed) % jnp.uint32(p)
      p, q = q, p
    return x

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
  # bits mod I is uniform up to a relative bias below I / 2^32 (1e-6 for
  # ML-1M); on XLA:CPU it is 3x faster than jax.random.randint.
  negative_items = (jax.random.bits(neg_key, positions.shape) %
                    jnp.uint32(num_items)).astype(jnp.int32)
  items = jnp.where(slot == 0, train_items[positive], negative_items)
  return Batch(train_users[positive], items, (slot == 0).astype(jnp.float32),
               valid.astype(jnp.float32))
