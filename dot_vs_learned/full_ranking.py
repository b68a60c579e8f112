"""Full-ranking evaluation: each test item against the whole catalogue.

Krichene and Rendle (KDD 2020) show that the NCF protocol's sampled metrics
can order models unlike the full ranking. Here each test item t of user u is
ranked against every item u has no training interaction with, ties counted
pessimistically (an item scoring equal to t ranks above it):
  position(t) = #{j not in train(u), j != t: s_uj >= s_ut}, 0-based; u's other
      test items count (they fill places of the top-K list, as in the Gowalla
      protocol of NGCF/LightGCN); this is the rank of hr, recall and ndcg;
  filtered(t) = the same without u's other test items (no test item is a
      negative); this is the rank of mrr.
With T_u test items (one per user under NCF, all metrics agree then):
  recall@K = #{t: position(t) < K} / T_u;   hr@K = [any position(t) < K];
  ndcg@K   = sum_{t: position(t) < K} 1 / log2(position(t) + 2)
             / sum_{i < min(K, T_u)} 1 / log2(i + 2);
  mrr      = mean_t 1 / (filtered(t) + 1);
each averaged over the users that have at least one test item.

Cost: the scores of every (user, item) pair, never held together. Users are
packed into chunks of `user_chunk` (balanced by test items;
ranking_layout.py); for each chunk a scan over `item_chunk` items of the
serving form (retrieval.py: one dot product per item for MF and GMF, the
MLP's item half W1_q q computed once) counts, for every test pair, the
items scoring at least as high. A user's
training and test items are excluded by a per-step scatter of their ids
(a CSR-like list per user chunk, no users x items mask). Memory per step:
O(user_chunk x item_chunk (x the MLP's width) + pairs_per_chunk^2); time:
O(users x items x score cost + test pairs x items comparisons).
EASE^R (with EaseParams.diag) is not scored as x_u B^T[chunk]^T, users x
items^2, but from the rows of B^T at each user's training items:
B[j, i] = B^T[j, i] diag_j / diag_i, (training pairs) x items in all, where
the data are sparse enough for that to be faster (make_evaluator). Its
history must lie within the split's training and test pairs of the user
(the training data, as the suite builds it); otherwise its metrics are NaN.
A test item's own score is computed per pair, the catalogue's by a matrix
product; both in float32 at full precision on every backend. They can differ
in the last bit, which can only swap items within ~1e-7 (relative) of the
test item's score; exact scores (popularity counts, the tests' integers)
tie exactly. EASE^R scored from rows sums the same terms in another order
(P's float32 rounding apart): items of equal co-occurrences, whose exact
scores tie, can then fall either side of the test item.
"""

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import models
from dot_vs_learned import ranking_layout
from dot_vs_learned import retrieval

# One number of B^T gathered from a history row costs about this many
# multiply-adds of EASE^R's dense scoring on XLA:CPU (benchmarks/
# full_ranking_speed.py: on ML-1M's 4.4%-dense histories the rows were
# slower, on Gowalla's 0.07% faster).
ROWS_COST = 100


class Spec(NamedTuple):
  """The static part of an evaluation (hashable: a jit static argument)."""
  num_items: int
  ks: tuple
  item_chunk: int
  num_users: int  # the model must have at least this many users
  mesh: Optional[jax.sharding.Mesh] = None  # 1-D; users sharded over it
  ease_rows: bool = False  # EASE^R (with diag) scored from B^T's rows


def popularity_model(counts_I, num_users: int) -> retrieval.ServingModel:
  """Popularity as a serving form: every user scores item i by its count."""
  counts_I = jnp.asarray(counts_I, jnp.float32)
  return retrieval.ServingModel(
      retrieval.Query(offset=jnp.zeros((num_users,)),
                      dot=jnp.ones((num_users, 1))),
      retrieval.Items(dot=counts_I[:, None]), retrieval.Tail())


def _pair_scores(query: retrieval.Query, items: retrieval.Items,
                 tail: retrieval.Tail) -> jax.Array:
  """Scores [P] of P (query, item) pairs, without the query offset."""
  scores = 0.0
  if query.dot is not None:
    scores = models.row_sums(query.dot * items.dot)
  if query.mlp is not None:
    x = jax.nn.relu(query.mlp + items.mlp)
    for kernel, bias in tail.layers:
      x = jax.nn.relu(x @ kernel + bias)
    scores = scores + x @ tail.out
  return scores


def _history_weights(query: retrieval.Query, diag_I,
                     chunk: ranking_layout.Layout):
  """EASE^R: x_u[j] diag_j of each excluded (training or test) item j of the
  chunk's users, and whether those items hold every user's whole history
  (they do when the model's history is the evaluation's training data)."""
  x_X = query.dot.at[chunk.excluded_slot, chunk.excluded_item].get(
      mode="fill", fill_value=0.0)
  found_B = jax.ops.segment_sum(x_X, chunk.excluded_slot,
                                num_segments=chunk.users.shape[0])
  covered = jnp.all((found_B == jnp.sum(query.dot, axis=1))
                    | (chunk.num_tests == 0))
  return x_X * diag_I.at[chunk.excluded_item].get(mode="fill",
                                                  fill_value=0.0), covered


def _history_scores(weight_X, catalog, chunk: ranking_layout.Layout,
                    start) -> jax.Array:
  """EASE^R's scores [B, C] of the chunk's users against the items at
  `start`: sum over the history j of B^T[j, i] diag_j / diag_i, which reads
  C numbers of B^T's row j per history item, not the whole B^T chunk."""
  rows_IxI = catalog.items.dot
  width = catalog.ids.shape[1]
  item_X = jnp.minimum(chunk.excluded_item, rows_IxI.shape[0] - 1)  # pad: 0
  part_XxC = jax.vmap(lambda j: jax.lax.dynamic_slice(
      rows_IxI, (j, start), (1, width))[0])(item_X)
  sums_BxC = jax.ops.segment_sum(weight_X[:, None] * part_XxC,
                                 chunk.excluded_slot,
                                 num_segments=chunk.users.shape[0])
  return sums_BxC / jax.lax.dynamic_slice_in_dim(catalog.items.diag, start,
                                                 width)


def _chunk_sums(model, catalog, chunk: ranking_layout.Layout,
                spec: Spec) -> jax.Array:
  """Sums over the users of one chunk of each metric, in _names(spec) order."""
  query = retrieval.select_users(model, chunk.users)
  history = spec.ease_rows and catalog.items.diag is not None
  if history:
    weight_X, covered = _history_weights(query, catalog.items.diag, chunk)
  num_users, num_pairs = chunk.users.shape[0], chunk.pair_item.shape[0]
  pair_query = jax.tree.map(lambda x: x[chunk.pair_slot], query)
  pair_items = jax.tree.map(lambda x: x[chunk.pair_item], model.items)
  test_P = _pair_scores(pair_query, pair_items, model.tail)
  width = catalog.ids.shape[1]

  def count(above_P, xs):
    start, ids = xs
    items = retrieval.chunk_items(catalog, start)
    # NaN marks what is not a candidate: the user's training and test items
    # and the ids the last chunk repeats; NaN >= s is False.
    local = chunk.excluded_item - start
    local = jnp.where((local >= 0) & (local < width), local, width)
    skip_BxC = jnp.broadcast_to(ids < 0, (num_users, width)).at[
        chunk.excluded_slot, local].set(True, mode="drop")
    scores_BxC = (_history_scores(weight_X, catalog, chunk, start) if history
                  else retrieval.ranking_scores(query, items, model.tail))
    scores_BxC = jnp.where(skip_BxC, jnp.nan, scores_BxC)
    above_PxC = scores_BxC[chunk.pair_slot] >= test_P[:, None]
    return above_P + jnp.sum(above_PxC, axis=1, dtype=jnp.int32), None

  # zeros_like: under shard_map the carry varies over devices, as the pairs.
  filtered_P, _ = jax.lax.scan(count, jnp.zeros_like(chunk.pair_item),
                               (catalog.starts, catalog.ids))
  # The user's other test items at least as high take places in the list.
  same_PxP = ((chunk.pair_slot[:, None] == chunk.pair_slot[None, :])
              & chunk.pair_valid[None, :] & ~jnp.eye(num_pairs, dtype=bool))
  others_P = jnp.sum(same_PxP & (test_P[None, :] >= test_P[:, None]), axis=1,
                     dtype=jnp.int32)
  # A NaN test score (a diverged model) ranks last.
  worst = jnp.int32(spec.num_items)
  filtered_P = jnp.where(jnp.isnan(test_P), worst, filtered_P)
  position_P = jnp.where(jnp.isnan(test_P), worst, filtered_P + others_P)
  valid_P = chunk.pair_valid.astype(jnp.float32)

  def per_user(values_P):
    return jax.ops.segment_sum(values_P * valid_P, chunk.pair_slot,
                               num_segments=num_users)

  tests_B = chunk.num_tests
  has_B = (tests_B > 0).astype(jnp.float32)
  sums = []
  for i, k in enumerate(spec.ks):
    hit_P = (position_P < k).astype(jnp.float32)
    hits_B = per_user(hit_P)
    dcg_B = per_user(hit_P / jnp.log2(position_P + 2.0))
    sums += [jnp.sum(hits_B / jnp.maximum(tests_B, 1.0)),
             jnp.sum(has_B * (hits_B > 0)),
             jnp.sum(dcg_B / chunk.ideal_dcg[:, i])]
  reciprocal_B = per_user(1.0 / (filtered_P + 1.0))
  sums.append(jnp.sum(reciprocal_B / jnp.maximum(tests_B, 1.0)))
  if history:  # a history beyond the split's items: NaN, not wrong numbers
    return jnp.where(covered, jnp.stack(sums), jnp.nan)
  return jnp.stack(sums)


def _names(ks) -> list[str]:
  return [f"{name}@{k}" for k in ks for name in ("recall", "hr", "ndcg")] + [
      "mrr"]


@functools.partial(jax.jit, static_argnames=("spec",))
def evaluate(layout: ranking_layout.Layout, model,
             spec: Spec) -> dict[str, jax.Array]:
  """Full-ranking metrics of one model; vmap over a leading seed axis.

  Args:
    layout: ranking_layout.make_layout(...) (its chunk axis sharded over
      spec.mesh, if any).
    model: a retrieval.ServingModel, or parameters serving_model accepts
      (models.MFParams, GMF/MLP/NeuMF flax parameters); popularity_model()
      for popularity.
    spec: num_items, ks, item_chunk, num_users and the optional mesh.

  Returns:
    {"recall@K", "hr@K", "ndcg@K" for K in spec.ks, "mrr"}: means over users.
  """
  if not isinstance(model, retrieval.ServingModel):
    model = retrieval.serving_model(model)
  if model.queries.offset.shape[0] < spec.num_users:
    raise ValueError(f"full_ranking: the model has "
                     f"{model.queries.offset.shape[0]} users, the test pairs "
                     f"need {spec.num_users}")

  def local(layout, model):
    # Exact float32 products on every backend: GPU and TPU matmuls round
    # their inputs by default, which would reorder near-ties.
    with jax.default_matmul_precision("highest"):
      catalog = retrieval.make_catalog(model.items, spec.item_chunk)
      return jax.lax.map(lambda chunk: _chunk_sums(model, catalog, chunk,
                                                   spec), layout)

  if spec.mesh is None:
    sums = local(layout, model)
  else:
    users = jax.sharding.PartitionSpec(spec.mesh.axis_names[0])
    sums = jax.shard_map(local, mesh=spec.mesh,
                         in_specs=(users, jax.sharding.PartitionSpec()),
                         out_specs=users)(layout, model)
  total = jnp.sum(sums, axis=0) / jnp.sum(layout.num_tests > 0)
  return dict(zip(_names(spec.ks), total))


def make_evaluator(num_items, train_users, train_items, test_users,
                   test_items, ks=(10,), item_chunk=4096, user_chunk=256,
                   mesh=None, ease_rows=None):
  """Returns evaluate(model) -> metrics for these splits (see evaluate).

  Jitted; vmappable over a leading seed axis of the model
  (jax.vmap(evaluator)(params)). `mesh`: a 1-D jax.sharding.Mesh over which
  the user chunks are sharded (the model is replicated); None: one device.
  `ease_rows`: whether EASE^R is scored from B^T's rows at the histories
  rather than densely; None: where the rows read ROWS_COST times fewer
  numbers than the dense product multiplies (sparse data).
  """
  if item_chunk < 1:
    raise ValueError("full_ranking: item_chunk must be >= 1")
  shards = 1 if mesh is None else mesh.devices.size
  layout = ranking_layout.make_layout(num_items, train_users, train_items,
                                      test_users, test_items, ks, user_chunk,
                                      shards)
  if mesh is not None:
    layout = jax.device_put(layout, jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec(mesh.axis_names[0])))
  if ease_rows is None:
    ease_rows = bool(ROWS_COST * layout.excluded_item.shape[1]
                     < layout.users.shape[1] * num_items)
  spec = Spec(int(num_items), tuple(int(k) for k in ks), int(item_chunk),
              int(np.max(test_users)) + 1, mesh, ease_rows)
  return functools.partial(evaluate, layout, spec=spec)
