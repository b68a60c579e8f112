"""The full ranking's test pairs and excluded items, laid out by user chunk.

Host-side (numpy) preparation for full_ranking.evaluate: the users with a
test item are dealt to chunks of equal size, balanced by their number of
test items; each chunk lists its test pairs and its users' training and
test items (the items excluded from their candidates), padded to the
longest chunk.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PAD_ITEM = 2**30  # an excluded-item id outside every item chunk


class Layout(NamedTuple):
  """Test pairs and excluded items, grouped into G user chunks of B users."""
  users: jax.Array  # [G, B] user ids; 0 on padding
  num_tests: jax.Array  # [G, B] float: test items of the user; 0 on padding
  ideal_dcg: jax.Array  # [G, B, len(ks)]: sum_{i < min(K, T_u)} 1/log2(i+2)
  pair_slot: jax.Array  # [G, P] user's place in its chunk (0..B-1)
  pair_item: jax.Array  # [G, P] test item; 0 on padding
  pair_valid: jax.Array  # [G, P] bool
  excluded_slot: jax.Array  # [G, X] user's place in its chunk
  excluded_item: jax.Array  # [G, X] training or test item; PAD_ITEM on padding


def _ids(name, values, upper):
  values = np.asarray(values)
  if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
    raise ValueError(f"full_ranking: {name} must be a 1-D integer array")
  if values.size and (values.min() < 0 or values.max() >= upper):
    raise ValueError(f"full_ranking: {name} must be in 0..{upper - 1}")
  return values.astype(np.int64)


def _grid(chunk, values, num_chunks, fill) -> jax.Array:
  """[num_chunks, most per chunk]: the values of each chunk in a row, padded
  with `fill`; `chunk` (sorted) gives each value's chunk."""
  start = np.searchsorted(chunk, np.arange(num_chunks))
  width = np.bincount(chunk, minlength=num_chunks).max()
  out = np.full((num_chunks, width), fill, values.dtype)
  out[chunk, np.arange(len(chunk)) - start[chunk]] = values
  return jnp.asarray(out)


def make_layout(num_items, train_users, train_items, test_users, test_items,
                ks=(10,), user_chunk=256, num_shards=1) -> Layout:
  """Groups the test pairs of the users that have one into user chunks.

  Test pairs are deduplicated; a test pair that is also a training pair is
  an error. The number of chunks is a multiple of num_shards.
  """
  if not ks or any(int(k) != k or k < 1 for k in ks):
    raise ValueError(f"full_ranking: ks must be cut-offs >= 1, got {ks!r}")
  if user_chunk < 1 or num_shards < 1:
    raise ValueError("full_ranking: user_chunk and num_shards must be >= 1")
  train_users, test_users = (_ids(name, v, 2**31) for name, v in (
      ("train_users", train_users), ("test_users", test_users)))
  train_items, test_items = (_ids(name, v, num_items) for name, v in (
      ("train_items", train_items), ("test_items", test_items)))
  if (len(train_users) != len(train_items)
      or len(test_users) != len(test_items)):
    raise ValueError("full_ranking: users and items of a split must have the "
                     "same length")
  tests = np.unique(test_users * num_items + test_items)
  trains = np.unique(train_users * num_items + train_items)
  both = np.intersect1d(tests, trains)
  if both.size:
    raise ValueError(f"full_ranking: test pair (user {both[0] // num_items}, "
                     f"item {both[0] % num_items}) is also a training pair")
  if not tests.size:
    raise ValueError("full_ranking: no test pairs")
  users, counts = np.unique(tests // num_items, return_counts=True)
  num_chunks = -(-len(users) // user_chunk)
  num_chunks = -(-num_chunks // num_shards) * num_shards
  # Users by decreasing test count dealt to chunks back and forth (a snake):
  # every chunk gets about the same number of test pairs.
  order = np.argsort(-counts, kind="stable")
  turn, seat = np.divmod(np.arange(len(users)), num_chunks)
  chunk_of, slot_of = np.empty_like(order), np.empty_like(order)
  chunk_of[order] = np.where(turn % 2 == 0, seat, num_chunks - 1 - seat)
  slot_of[order] = turn  # a chunk's slots are 0, 1, ..

  def entries(index, values, fill):
    """Grids of the slots and values of users users[index], by chunk."""
    order = np.lexsort((slot_of[index], chunk_of[index]))
    chunk = chunk_of[index][order]
    return (_grid(chunk, slot_of[index][order].astype(np.int32), num_chunks,
                  0), _grid(chunk, values[order], num_chunks, fill))

  _, user_grid = entries(np.arange(len(users)), users.astype(np.int32), 0)
  _, count_grid = entries(np.arange(len(users)), counts.astype(np.float32), 0)
  discounts = np.cumsum(1.0 / np.log2(np.arange(max(ks)) + 2.0))
  ideal = np.stack([discounts[np.maximum(np.minimum(count_grid, k), 1)
                              .astype(int) - 1] for k in ks], axis=-1)
  pair_slot, pair_item = entries(np.searchsorted(users, tests // num_items),
                                 (tests % num_items).astype(np.int32), -1)
  excluded = np.union1d(tests, trains)
  index = np.searchsorted(users, excluded // num_items)
  ours = users[np.minimum(index, len(users) - 1)] == excluded // num_items
  excluded_slot, excluded_item = entries(
      index[ours], (excluded[ours] % num_items).astype(np.int32), PAD_ITEM)
  return Layout(user_grid, count_grid, jnp.asarray(ideal, jnp.float32),
                pair_slot, jnp.maximum(pair_item, 0), pair_item >= 0,
                excluded_slot, excluded_item)
