"""iALS's rows laid out for batched solves (ials.py).

Rows (users, or items) are grouped by their pair count, padded up a ladder
of lengths, so that a chunk of rows of one class is one batched gather and
one batched matrix product. On ML-1M this beat fixed segments summed per
row.
"""

from typing import NamedTuple

import jax
import numpy as np


class Side(NamedTuple):
  """One half-step's rows in classes of equal padded length l_c."""
  cols: tuple  # per class [K_c, R_c, l_c] int32 other-side ids; pad = size
  counts: tuple  # per class [K_c, R_c] float32 pairs of each row; pad 0
  ids: tuple  # per class [K_c, R_c] int32 row ids; pad = rows
  where: jax.Array  # [rows] int32 row's position in the classes' rows


def lengths(granule=32, ratio=1.25, longest=1):
  """Padded lengths up to `longest`: multiples of granule, ~ratio apart."""
  ladder = [granule]
  while ladder[-1] < longest:
    step = -(-int(ladder[-1] * ratio) // granule) * granule
    ladder.append(max(ladder[-1] + granule, step))
  return np.array(ladder)


def build_side(rows, cols, num_rows, num_cols, *, chunk_pairs, chunk_rows,
               granule=32, ratio=1.25, devices=1) -> Side:
  """Lays out pairs (numpy) to solve `rows` from `cols` factors.

  A row's pairs are padded to the next of `lengths`; rows without pairs
  join the shortest class and solve to 0. A class's K_c chunks (a multiple
  of `devices`) hold at most chunk_pairs padded pairs and chunk_rows rows.
  """
  # Each row's pairs in order, then one sentinel (padding) at the end.
  cols = np.append(np.asarray(cols)[np.lexsort((cols, rows))], num_cols)
  counts = np.bincount(rows, minlength=num_rows)
  starts = np.cumsum(counts) - counts
  ladder = lengths(granule, ratio, max(int(counts.max(initial=0)), 1))
  cls = np.searchsorted(ladder, counts)  # the smallest length >= count
  where = np.empty(num_rows, np.int32)
  tables, chunk_counts, ids, base = [], [], [], 0
  for c in np.unique(cls):
    members, length = np.flatnonzero(cls == c), int(ladder[c])
    k = max(-(-len(members) * length // chunk_pairs),
            -(-len(members) // chunk_rows))
    k = -(-k // devices) * devices
    per = -(-len(members) // k)
    where[members] = base + np.arange(len(members))
    offset_RxL = np.arange(length)
    pair_RxL = np.where(offset_RxL < counts[members][:, None],
                        starts[members][:, None] + offset_RxL, len(cols) - 1)
    table = np.full((k * per, length), num_cols, np.int32)
    table[:len(members)] = cols[pair_RxL]
    n = np.zeros(k * per, np.float32)
    n[:len(members)] = counts[members]
    row_ids = np.full(k * per, num_rows, np.int32)
    row_ids[:len(members)] = members
    tables.append(table.reshape(k, per, length))
    chunk_counts.append(n.reshape(k, per))
    ids.append(row_ids.reshape(k, per))
    base += k * per
  return Side(tuple(tables), tuple(chunk_counts), tuple(ids), where)
