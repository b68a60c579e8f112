"""Top-K retrieval for serving (paper §5): dot product against learned similarities.

Every model is put in a serving form: a query side computed once per user and
an item side computed once per catalogue, so that ranking n items for a user
costs
  MF, GMF: one dot product per item, O(dn). MF ranks by <[1, p_2..p_d], q>
           (b and the user bias p_1 shift every score equally); GMF by
           <w * p, q>; iALS by <p, q>;
  EASE^R:  a dot product of dimension n: the user's history x_u against
           the column B[:, i], O(n^2) per user (full_ranking.py reads B^T's
           rows at the history instead, O(|x_u| n), with Items.diag);
  MLP:     its first layer splits, W1 [p; q] = W1_p p + W1_q q, so W1_q q is
           computed once per item; each item still pays the hidden layers,
           O(h^2 n) with h ~ d;
  NeuMF:   both terms.
`top_k` scans the catalogue in chunks (`lax.scan`) keeping a running top K,
so memory is O(queries x chunk) for any n. Dot-product models can also be
served by an approximate maximum inner product search index (faiss, the
optional `ann` extra): `build_index`, `index_top_k`, `recall_at_k`.
"""

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dot_vs_learned import models


class Query(NamedTuple):
  """Query side of a batch of users; fields of other models are None."""
  offset: jax.Array  # [Q]: what every score of the user adds.
  dot: Optional[jax.Array] = None  # [Q, d]: scores <dot, item.dot>.
  mlp: Optional[jax.Array] = None  # [Q, h1]: W1_p p + b1.


class Items(NamedTuple):
  """Item side; leading axis: items."""
  dot: Optional[jax.Array] = None  # [n, d]
  mlp: Optional[jax.Array] = None  # [n, h1]: W1_q q.
  # [n] EASE^R's diag(P): B[j, i] = dot[j, i] diag_j / diag_i (EaseParams).
  diag: Optional[jax.Array] = None


class Tail(NamedTuple):
  """MLP layers after the first ((kernel, bias) pairs) and the output weights
  of the last hidden vector."""
  layers: tuple = ()
  out: Optional[jax.Array] = None  # [h_last]


class ServingModel(NamedTuple):
  queries: Query  # of every user, leading axis: users.
  items: Items
  tail: Tail


class Catalog(NamedTuple):
  """The items as they are, cut into chunks by the scan (chunk_items): no
  copy of the item tables, which for EASE^R are I x I (6.7 GB at 41k
  items). The last chunk ends at the last item; where it overlaps the one
  before, its repeated ids are -1."""
  items: Items
  ids: jax.Array  # [num_chunks, chunk]: item id, -1 where repeated.
  starts: jax.Array  # [num_chunks] int32: first row of each chunk.


def chunk_items(catalog: Catalog, start) -> Items:
  """The items of the chunk that starts at row `start` (traceable)."""
  chunk = catalog.ids.shape[1]
  return jax.tree.map(
      lambda x: jax.lax.dynamic_slice_in_dim(x, start, chunk), catalog.items)


def serving_model(params) -> ServingModel:
  """The serving form of trained MF, GMF, MLP, NeuMF, iALS or EASE^R
  parameters."""
  if isinstance(params, models.DotParams):
    return ServingModel(Query(offset=jnp.zeros(params.user.shape[:1]),
                              dot=params.user), Items(dot=params.item), Tail())
  if isinstance(params, models.EaseParams):
    return ServingModel(Query(offset=jnp.zeros(params.history.shape[:1]),
                              dot=params.history),
                        Items(dot=params.weights_t, diag=params.diag),
                        Tail())
  if isinstance(params, models.MFParams):
    ones = jnp.ones_like(params.user[:, :1])
    return ServingModel(
        Query(offset=params.bias + params.user[:, 0],
              dot=jnp.concatenate([ones, params.user[:, 1:]], axis=1)),
        Items(dot=params.item), Tail())
  p = params["params"]
  out_kernel, out_bias = p["out"]["kernel"][:, 0], p["out"]["bias"][0]
  if "gmf" in p:  # NeuMF: GMF features first in the output layer.
    gmf_dim = p["gmf"]["user"]["embedding"].shape[1]
    gmf = _gmf_form(p["gmf"], out_kernel[:gmf_dim])
    mlp = _mlp_form(p["mlp"], out_kernel[gmf_dim:])
    return ServingModel(
        Query(offset=jnp.broadcast_to(out_bias, gmf.queries.dot.shape[:1]),
              dot=gmf.queries.dot, mlp=mlp.queries.mlp),
        Items(dot=gmf.items.dot, mlp=mlp.items.mlp), mlp.tail)
  form = _mlp_form(p, out_kernel) if "layers_0" in p else _gmf_form(
      p, out_kernel)
  offset = jnp.broadcast_to(out_bias, form.queries.offset.shape)
  return form._replace(queries=form.queries._replace(offset=offset))


def _gmf_form(p, w) -> ServingModel:
  user = p["user"]["embedding"]
  return ServingModel(Query(offset=jnp.zeros(user.shape[:1]), dot=user * w),
                      Items(dot=p["item"]["embedding"]), Tail())


def _mlp_form(p, w) -> ServingModel:
  user, item = p["user"]["embedding"], p["item"]["embedding"]
  first = p["layers_0"]["kernel"]  # [2d, h1]: rows of p, then rows of q.
  dim = user.shape[1]
  count = sum(1 for name in p if name.startswith("layers_"))
  layers = tuple((p[f"layers_{i}"]["kernel"], p[f"layers_{i}"]["bias"])
                 for i in range(1, count))
  return ServingModel(
      Query(offset=jnp.zeros(user.shape[:1]),
            mlp=user @ first[:dim] + p["layers_0"]["bias"]),
      Items(mlp=item @ first[dim:]), Tail(layers, w))


def select_users(model: ServingModel, users) -> Query:
  """The query side of the given users."""
  return jax.tree.map(lambda x: x[users], model.queries)


def score(query: Query, items: Items, tail: Tail) -> jax.Array:
  """Scores (logits) [Q, C] of Q queries against C items."""
  return query.offset[:, None] + ranking_scores(query, items, tail)


def ranking_scores(query: Query, items: Items, tail: Tail) -> jax.Array:
  """score() without the per-query offset, which cannot change a ranking.

  Leaving the offset out also keeps XLA:CPU from fusing the add into the
  matmul, which then runs in generated code instead of the matmul library:
  measured 190 ms instead of 14 ms per query at n = 10^6, d = 64.
  """
  scores = 0.0
  if query.dot is not None:
    scores = query.dot @ items.dot.T
  if query.mlp is not None:
    x = jax.nn.relu(query.mlp[:, None, :] + items.mlp[None, :, :])
    for kernel, bias in tail.layers:
      x = jax.nn.relu(x @ kernel + bias)
    scores = scores + x @ tail.out
  return scores


def make_catalog(items: Items, chunk_size: int) -> Catalog:
  """Chunks of min(chunk_size, n) items; the items are not copied."""
  n = jax.tree.leaves(items)[0].shape[0]
  chunk = min(chunk_size, n)
  num_chunks = -(-n // chunk)
  nominal = jnp.arange(num_chunks, dtype=jnp.int32) * chunk
  starts = jnp.minimum(nominal, n - chunk)
  ids = starts[:, None] + jnp.arange(chunk, dtype=jnp.int32)[None, :]
  return Catalog(items, jnp.where(ids >= nominal[:, None], ids, -1), starts)


@functools.partial(jax.jit, static_argnames=("k",))
def top_k(query: Query, catalog: Catalog, tail: Tail, k: int):
  """Exact top k of every query over the catalogue: (scores, ids), [Q, k].

  Best first; equal scores keep the lower item id first (as a stable sort).
  k must not exceed the number of items.
  """
  num_queries = query.offset.shape[0]
  chunk = catalog.ids.shape[1]

  def body(best, xs):
    start, ids = xs
    scores = jnp.where(ids[None, :] >= 0,
                       ranking_scores(query, chunk_items(catalog, start),
                                      tail), -jnp.inf)
    chunk_scores, positions = jax.lax.top_k(scores, min(k, chunk))
    merged_scores = jnp.concatenate([best[0], chunk_scores], axis=1)
    merged_ids = jnp.concatenate([best[1], ids[positions]], axis=1)
    top_scores, order = jax.lax.top_k(merged_scores, k)
    return (top_scores, jnp.take_along_axis(merged_ids, order, axis=1)), None

  init = (jnp.full((num_queries, k), -jnp.inf),
          jnp.full((num_queries, k), -1, jnp.int32))
  (scores, ids), _ = jax.lax.scan(body, init, (catalog.starts, catalog.ids))
  return scores + query.offset[:, None], ids


def recommend(model: ServingModel, catalog: Catalog, users, k: int,
              seen: list[np.ndarray], rows=None):
  """Top k items per user that are not in seen[j] (items seen in training).

  Exact: it ranks k + max |seen| items, then drops the seen ones. `rows`:
  each user's row of model.queries where that is not the user id (a model
  built for these users only). Returns (scores, ids), numpy [len(users), k].
  """
  num_items = int(np.sum(np.asarray(catalog.ids) >= 0))
  users = np.asarray(users)
  for user, items in zip(users, seen):
    if num_items - np.unique(items).size < k:
      raise ValueError(f"user {user}: only {num_items - np.unique(items).size}"
                       f" unseen items, fewer than k={k}")
  wide = min(k + max((len(s) for s in seen), default=0), num_items)
  rows = users if rows is None else np.asarray(rows)
  scores, ids = jax.device_get(top_k(select_users(model, rows), catalog,
                                     model.tail, wide))
  keep = np.stack([~np.isin(row, items) for row, items in zip(ids, seen)])
  order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
  return (np.take_along_axis(scores, order, axis=1),
          np.take_along_axis(ids, order, axis=1))


def recall_at_k(approx_ids, exact_ids) -> float:
  """Mean over queries of |approx top k ∩ exact top k| / k."""
  approx_ids, exact_ids = np.asarray(approx_ids), np.asarray(exact_ids)
  k = exact_ids.shape[1]
  hits = [np.intersect1d(a[a >= 0], e).size for a, e in zip(approx_ids,
                                                             exact_ids)]
  return float(np.mean(hits) / k)


def _faiss():
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("approximate search needs faiss: pip install "
                      "'dot_vs_learned[ann]' (faiss-cpu)") from e
  return faiss


MAX_TRAINING = 256 * 1024  # vectors an index trains on at most


def empty_index(dim, factory) -> Any:
  """An empty, untrained faiss inner product index of `factory`, a faiss
  index_factory string ("HNSW32,Flat", "IVF1024,Flat", "Flat", ...);
  faiss's RuntimeError if it cannot build one of dimension `dim`."""
  faiss = _faiss()
  return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)


def index_lists(index) -> int:
  """The IVF lists of `index` (each needs a training vector); 0 if none."""
  try:
    return int(_faiss().extract_index_ivf(index).nlist)
  except RuntimeError:  # not an IVF index
    return 0


def build_index(vectors, factory="HNSW32,Flat", ef_construction=64,
                seed=0) -> Any:
  """A faiss maximum inner product index over the rows of `vectors`
  (factory: empty_index's); ef_construction applies to HNSW indexes."""
  vectors = np.ascontiguousarray(vectors, dtype=np.float32)
  index = empty_index(vectors.shape[1], factory)
  inner = _faiss().downcast_index(index)
  if hasattr(inner, "hnsw"):
    inner.hnsw.efConstruction = ef_construction
  if not index.is_trained:
    sample = np.random.default_rng(seed).permutation(len(vectors))
    index.train(vectors[sample[:MAX_TRAINING]])
  index.add(vectors)
  return index


def set_search_parameter(index, name: str, value) -> None:
  """Sets a faiss search parameter (efSearch, nprobe) by name."""
  _faiss().ParameterSpace().set_index_parameter(index, name, value)


def index_bytes(index) -> int:
  """Size of the serialized index."""
  return int(_faiss().serialize_index(index).nbytes)


def index_top_k(index, queries, k):
  """Approximate top k by inner product: (scores, ids), numpy [Q, k]."""
  return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
