"""Tests of retrieval.py: serving forms, exact chunked top-K, exclusion, recall."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import models
from dot_vs_learned import retrieval

NUM_USERS, NUM_ITEMS = 7, 203


def _flax_params(module, seed=0):
  """Parameters with weights large enough that scores are well spread."""
  ids = jnp.zeros((1,), jnp.int32)

  @jax.jit
  def init(key):
    params = module.init(key, ids, ids)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree.unflatten(tree, [
        jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])

  return init(jax.random.key(seed))


@functools.cache
def _model(name):
  """(params, score function) of one model on NUM_USERS x NUM_ITEMS."""
  if name == "mf":
    mf = models.init_mf(jax.random.key(0), NUM_USERS, NUM_ITEMS, 6, 0.5)
    mf = mf._replace(user=mf.user.at[:, 0].set(0.3), bias=jnp.float32(0.7))
    return mf, models.mf_score
  module = {"gmf": lambda: models.GMF(NUM_USERS, NUM_ITEMS, 5),
            "mlp": lambda: models.MLP(NUM_USERS, NUM_ITEMS, 4, (8, 6, 3)),
            "neumf": lambda: models.NeuMF(NUM_USERS, NUM_ITEMS, 3, 4, (8, 4)),
            }[name]()
  return _flax_params(module), module.apply


@pytest.mark.parametrize("name", ["mf", "gmf", "mlp", "neumf"])
def test_serving_form_scores_equal_the_model(name):
  params, apply = _model(name)
  users = jnp.arange(NUM_USERS)

  @jax.jit  # one program, not a compile per eager operation
  def serve(params):
    model = retrieval.serving_model(params)
    return retrieval.score(retrieval.select_users(model, users), model.items,
                           model.tail)

  got = serve(params)
  u, i = jnp.meshgrid(users, jnp.arange(NUM_ITEMS), indexing="ij")
  want = jax.jit(apply)(params, u, i)
  assert got.shape == (NUM_USERS, NUM_ITEMS)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert float(jnp.std(want)) > 0.1  # a check with spread-out scores


def test_exact_top_k_equals_numpy_argsort():
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(5, 8)).astype(np.float32)
  items = rng.normal(size=(1000, 8)).astype(np.float32)
  query = retrieval.Query(offset=jnp.zeros(5), dot=jnp.asarray(queries))
  catalog = retrieval.make_catalog(retrieval.Items(dot=jnp.asarray(items)),
                                   128)  # 1000 = 7 chunks of 128 + 104
  assert catalog.ids.shape == (8, 128)
  # The items are not copied; the last chunk is items 872..999, its first
  # 24 (repeats of the chunk before) marked -1.
  assert catalog.items.dot.shape == (1000, 8)
  np.testing.assert_array_equal(catalog.starts,
                                [0, 128, 256, 384, 512, 640, 768, 872])
  np.testing.assert_array_equal(catalog.ids[-1, :24], -1)
  np.testing.assert_array_equal(catalog.ids[-1, 24:], np.arange(896, 1000))
  np.testing.assert_array_equal(np.sort(catalog.ids[catalog.ids >= 0]),
                                np.arange(1000))
  scores, ids = retrieval.top_k(query, catalog, retrieval.Tail(), k=10)
  full = queries @ items.T
  want = np.argsort(-full, axis=1, kind="stable")[:, :10]
  np.testing.assert_array_equal(ids, want)
  np.testing.assert_allclose(scores, np.take_along_axis(full, want, 1),
                             rtol=1e-5)


@pytest.mark.parametrize("name", ["mf", "mlp", "neumf"])
@pytest.mark.parametrize("chunk", [1, 37, 64])
def test_chunked_equals_unchunked(name, chunk):
  model = retrieval.serving_model(_model(name)[0])
  query = retrieval.select_users(model, jnp.arange(NUM_USERS))
  whole = retrieval.top_k(query, retrieval.make_catalog(model.items, 10**6),
                          model.tail, k=15)
  chunked = retrieval.top_k(query, retrieval.make_catalog(model.items, chunk),
                            model.tail, k=15)
  np.testing.assert_array_equal(chunked[1], whole[1])
  np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5, atol=1e-6)


def test_k_equal_to_the_catalogue_returns_every_item():
  model = retrieval.serving_model(_model("gmf")[0])
  _, ids = retrieval.top_k(retrieval.select_users(model, jnp.arange(2)),
                           retrieval.make_catalog(model.items, 50), model.tail,
                           k=NUM_ITEMS)
  for row in np.asarray(ids):
    np.testing.assert_array_equal(np.sort(row), np.arange(NUM_ITEMS))


def test_recommend_excludes_seen_items():
  params, apply = _model("mlp")
  model = retrieval.serving_model(params)
  catalog = retrieval.make_catalog(model.items, 50)
  users = np.array([0, 3, 5])
  full = np.asarray(apply(params, *jnp.meshgrid(jnp.asarray(users),
                                                 jnp.arange(NUM_ITEMS),
                                                 indexing="ij")))
  # Each user has seen its own top 4 items, plus some others (one twice).
  seen = [np.r_[np.argsort(-row)[:4], [7, 7, 100]] for row in full]
  scores, ids = retrieval.recommend(model, catalog, users, 5, seen)
  masked = full.copy()
  for row, items in zip(masked, seen):
    row[items] = -np.inf
  want = np.argsort(-masked, axis=1, kind="stable")[:, :5]
  np.testing.assert_array_equal(ids, want)
  np.testing.assert_allclose(scores, np.take_along_axis(full, want, 1),
                             rtol=1e-5, atol=1e-6)
  for row, items in zip(ids, seen):
    assert not set(row) & set(items)


def test_recommend_refuses_k_beyond_the_unseen_items():
  model = retrieval.serving_model(_model("mf")[0])
  catalog = retrieval.make_catalog(model.items, 64)
  seen = [np.arange(NUM_ITEMS - 3)]
  with pytest.raises(ValueError, match="user 2: only 3 unseen items"):
    retrieval.recommend(model, catalog, [2], 4, seen)


def test_recall_on_a_hand_built_case():
  exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
  approx = np.array([[4, 3, 9, 10],  # 2 of 4, order ignored
                     [8, 7, 6, -1]])  # 3 of 4; -1 (faiss: no result) no hit
  assert retrieval.recall_at_k(approx, exact) == pytest.approx(5 / 8)
  assert retrieval.recall_at_k(exact, exact) == 1.0


def test_faiss_flat_index_is_exact_and_hnsw_recalls_well():
  pytest.importorskip("faiss")
  rng = np.random.default_rng(1)
  items = rng.normal(size=(2000, 16)).astype(np.float32)
  queries = rng.normal(size=(50, 16)).astype(np.float32)
  exact = np.argsort(-(queries @ items.T), axis=1)[:, :10]
  flat = retrieval.build_index(items, "Flat")
  assert retrieval.recall_at_k(retrieval.index_top_k(flat, queries, 10)[1],
                               exact) == 1.0
  assert retrieval.index_bytes(flat) >= items.nbytes
  hnsw = retrieval.build_index(items, "HNSW16,Flat", ef_construction=40)
  retrieval.set_search_parameter(hnsw, "efSearch", 4)
  low = retrieval.recall_at_k(retrieval.index_top_k(hnsw, queries, 10)[1],
                              exact)
  retrieval.set_search_parameter(hnsw, "efSearch", 256)
  high = retrieval.recall_at_k(retrieval.index_top_k(hnsw, queries, 10)[1],
                               exact)
  assert low < high and high >= 0.95


def test_empty_index_checks_the_factory_string_and_counts_ivf_lists():
  pytest.importorskip("faiss")
  index = retrieval.empty_index(8, "IVF16,Flat")
  assert index.ntotal == 0 and not index.is_trained
  assert retrieval.index_lists(index) == 16
  assert retrieval.index_lists(retrieval.empty_index(8, "PCA4,IVF8,Flat")) == 8
  assert retrieval.index_lists(retrieval.empty_index(8, "HNSW8,Flat")) == 0
  with pytest.raises(RuntimeError, match="could not parse index string"):
    retrieval.empty_index(8, "Bogus")
