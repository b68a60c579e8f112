"""Tests of full_ranking.py against a plain numpy ranking of every item."""

import operator
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import ease
from dot_vs_learned import full_ranking
from dot_vs_learned import models
from dot_vs_learned import ranking_layout
from dot_vs_learned import retrieval


def reference(scores_UxI, train, test, ks):
  """Metrics by the definitions of full_ranking's docstring, user by user."""
  sums, users = {}, 0
  for user in range(scores_UxI.shape[0]):
    row = scores_UxI[user]
    seen = {i for u, i in zip(*train) if u == user}
    tests = sorted({i for u, i in zip(*test) if u == user})
    if not tests:
      continue
    users += 1
    candidates = [j for j in range(len(row)) if j not in seen]
    positions, filtered = [], []
    for t in tests:
      above = [j for j in candidates if j != t and row[j] >= row[t]]
      positions.append(len(above))
      filtered.append(len([j for j in above if j not in tests]))
    values = {"mrr": np.mean([1 / (f + 1) for f in filtered])}
    for k in ks:
      hits = [p for p in positions if p < k]
      ideal = sum(1 / np.log2(i + 2) for i in range(min(k, len(tests))))
      values[f"recall@{k}"] = len(hits) / len(tests)
      values[f"hr@{k}"] = float(bool(hits))
      values[f"ndcg@{k}"] = sum(1 / np.log2(p + 2) for p in hits) / ideal
    for name, value in values.items():
      sums[name] = sums.get(name, 0.0) + value
  return {name: value / users for name, value in sums.items()}


def table_model(scores_UxI):
  """A serving form whose scores are exactly the given table (one-hot)."""
  scores_UxI = jnp.asarray(scores_UxI, jnp.float32)
  num_users = scores_UxI.shape[0]
  return retrieval.ServingModel(
      retrieval.Query(offset=jnp.zeros(num_users), dot=jnp.eye(num_users)),
      retrieval.Items(dot=scores_UxI.T), retrieval.Tail())


def evaluate(model, num_items, train, test, ks=(1, 3), **kwargs):
  evaluator = full_ranking.make_evaluator(num_items, *train, *test, ks=ks,
                                          **kwargs)
  return {name: float(value) for name, value in evaluator(model).items()}


def assert_metrics(got, want):
  assert sorted(got) == sorted(want)
  for name in want:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7,
                               err_msg=name)


def test_hand_built_scores():
  scores = np.array([
      [0.9, 0.5, 0.5, 0.1, 0.7, 0.0],  # test 1; 0 above, 2 ties, 4 trained
      [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # tests 3 and 0; 4, 5 trained
      [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],  # trained only: not averaged
      [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],  # test 2; every other item ties
  ])
  train = (np.array([0, 1, 1, 2]), np.array([4, 5, 4, 0]))
  test = (np.array([0, 1, 1, 3]), np.array([1, 3, 0, 2]))
  got = evaluate(table_model(scores), 6, train, test, item_chunk=4,
                 user_chunk=2)
  # Positions: user 0 item 1: 2; user 1 item 3: 0, item 0: 3 (2 negatives and
  # test item 3 above; filtered: 2); user 3 item 2: 5.
  ideal = 1 + 1 / np.log2(3)
  want = {"recall@1": (0 + 1 / 2 + 0) / 3, "hr@1": 1 / 3, "ndcg@1": 1 / 3,
          "recall@3": (1 + 1 / 2 + 0) / 3, "hr@3": 2 / 3,
          "ndcg@3": (1 / np.log2(4) + 1 / ideal + 0) / 3,
          "mrr": (1 / 3 + (1 + 1 / 3) / 2 + 1 / 6) / 3}
  assert_metrics(got, want)
  assert_metrics(got, reference(scores, train, test, (1, 3)))


def random_splits(rng, num_users, num_items, tests_per_user):
  """Disjoint train and test pairs; user 1 has no test item."""
  train, test = ([], []), ([], [])
  for user in range(num_users):
    items = rng.permutation(num_items)[:rng.integers(3, num_items // 2)]
    count = 0 if user == 1 else rng.integers(1, tests_per_user + 1)
    for target, chosen in ((test, items[:count]), (train, items[count:])):
      target[0].extend([user] * len(chosen))
      target[1].extend(chosen)
  return (tuple(np.array(a) for a in train), tuple(np.array(a) for a in test))


def test_tied_integer_scores_match_numpy_for_any_chunks():
  rng = np.random.default_rng(1)
  num_users, num_items = 11, 37
  scores = rng.integers(0, 6, (num_users, num_items)).astype(np.float32)
  train, test = random_splits(rng, num_users, num_items, 4)
  want = reference(scores, train, test, (1, 5, 10))
  # Chunks that divide neither 37 items nor the 10 users with a test item.
  for item_chunk, user_chunk in [(10**6, 10**6), (5, 3)]:
    got = evaluate(table_model(scores), num_items, train, test, (1, 5, 10),
                   item_chunk=item_chunk, user_chunk=user_chunk)
    assert_metrics(got, want)


def numpy_scores(params, users, items):
  """The models of models.py in numpy (their flax parameter layout)."""
  if isinstance(params, models.MFParams):
    user, item = np.asarray(params.user)[users], np.asarray(params.item)[items]
    return (float(params.bias) + user[..., 0] + item[..., 0]
            + np.sum(user[..., 1:] * item[..., 1:], axis=-1))
  p = jax.tree.map(np.asarray, params["params"])

  def gmf(p):
    return p["user"]["embedding"][users] * p["item"]["embedding"][items]

  def mlp(p):
    x = np.concatenate([p["user"]["embedding"][users],
                        p["item"]["embedding"][items]], axis=-1)
    for i in range(sum(name.startswith("layers_") for name in p)):
      x = np.maximum(x @ p[f"layers_{i}"]["kernel"] + p[f"layers_{i}"]["bias"],
                     0.0)
    return x

  if "gmf" in p:
    features = np.concatenate([gmf(p["gmf"]), mlp(p["mlp"])], axis=-1)
  else:
    features = mlp(p) if "layers_0" in p else gmf(p)
  return features @ p["out"]["kernel"][:, 0] + p["out"]["bias"][0]


def random_params(module, rng):
  """N(0, 1) weights (well spread scores) in the module's parameter shapes;
  eval_shape compiles nothing."""
  ids = jnp.zeros((1,), jnp.int32)
  shapes = jax.eval_shape(module.init, jax.random.key(0), ids, ids)
  return jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape),
                                            jnp.float32), shapes)


@pytest.mark.parametrize("name", ["mf", "gmf", "mlp", "neumf", "popularity"])
def test_every_model_matches_a_dense_numpy_ranking(name):
  rng = np.random.default_rng(0)
  num_users, num_items = 9, 53
  train, test = random_splits(rng, num_users, num_items, 3)
  if name == "popularity":
    counts = models.popularity_counts(train[1], num_items)
    model = full_ranking.popularity_model(counts, num_users)
    scores = np.broadcast_to(counts, (num_users, num_items))
  else:
    if name == "mf":
      params = models.MFParams(*(jnp.asarray(rng.normal(size=shape),
                                             jnp.float32)
                                 for shape in ((num_users, 5),
                                               (num_items, 5), ())))
    else:
      params = random_params(
          {"gmf": models.GMF(num_users, num_items, 5),
           "mlp": models.MLP(num_users, num_items, 4, (8, 3)),
           "neumf": models.NeuMF(num_users, num_items, 3, 4, (6, 3))}[name],
          rng)
    # Serving forms of MF and GMF at d = 5 share one compiled evaluator.
    model = retrieval.serving_model(params)
    scores = numpy_scores(params, *np.meshgrid(np.arange(num_users),
                                               np.arange(num_items),
                                               indexing="ij"))
  want = reference(scores, train, test, (1, 10))
  got = evaluate(model, num_items, train, test, (1, 10), item_chunk=16,
                 user_chunk=4)
  assert_metrics(got, want)
  assert 0 < want["ndcg@10"] < 1


def _ease_problem(rng, num_users=30, num_items=41):
  """EASE^R fitted on random splits at two lambdas (a seed axis of 2)."""
  train, test = random_splits(rng, num_users, num_items, 3)
  x = ease.history_matrix(*train, num_users, num_items)
  gram = jnp.asarray(x.T @ x)
  fits = [ease.fit(gram, reg) for reg in (1.0, 20.0)]
  params = models.EaseParams(jnp.stack([w for w, _ in fits]),
                             jnp.asarray(np.stack([x, x])),
                             jnp.stack([d for _, d in fits]))
  return train, test, x, params


def test_ease_scored_from_history_rows_matches_dense_numpy_ranking():
  rng = np.random.default_rng(8)
  num_items = 41
  train, test, x, params = _ease_problem(rng, num_items=num_items)
  by_rows, dense = (jax.jit(jax.vmap(full_ranking.make_evaluator(
      num_items, *train, *test, ks=(1, 10), item_chunk=9, user_chunk=3,
      ease_rows=rows)))(params) for rows in (True, False))
  for seed in range(2):
    # Scores x_u B, B from B^T as numpy has it.
    scores = x @ np.asarray(params.weights_t[seed], np.float64).T
    # No near-ties, which float32 rounding could order either way (items
    # with the same co-occurrences score the same).
    assert np.diff(np.sort(scores, axis=1), axis=1).min() > 1e-5
    want = reference(scores, train, test, (1, 10))
    assert_metrics({n: float(v[seed]) for n, v in by_rows.items()}, want)
    assert_metrics({n: float(v[seed]) for n, v in dense.items()}, want)
    assert 0 < want["ndcg@10"] < 1


def test_ease_reads_rows_only_where_the_data_are_sparse():
  rng = np.random.default_rng(7)
  train, test = random_splits(rng, 12, 30, 2)  # 3 to 14 items of 30 each
  def chosen(num_items, train):
    evaluator = full_ranking.make_evaluator(num_items, *train, *test,
                                            user_chunk=4)
    return evaluator.keywords["spec"].ease_rows
  assert not chosen(30, train)
  # The same pairs in a catalogue of 30 x ROWS_COST items.
  assert chosen(30 * full_ranking.ROWS_COST, train)


def test_ease_history_outside_the_split_gives_nan_not_wrong_numbers():
  rng = np.random.default_rng(6)
  train, test, x, params = _ease_problem(rng)
  # User 0's history holds an item that is neither its training nor its
  # test item: the rows read miss it.
  outside = np.setdiff1d(np.arange(x.shape[1]), np.concatenate([
      train[1][train[0] == 0], test[1][test[0] == 0]]))[0]
  history = np.asarray(params.history).copy()
  history[:, 0, outside] = 1.0
  params = params._replace(history=jnp.asarray(history))
  by_rows, dense = (jax.jit(jax.vmap(full_ranking.make_evaluator(
      x.shape[1], *train, *test, ks=(10,), item_chunk=16, user_chunk=4,
      ease_rows=rows)))(params) for rows in (True, False))
  assert all(np.isnan(v).all() for v in by_rows.values())
  # Scored densely (x_u B^T), no row is missed: the history counts.
  assert all(np.isfinite(v).all() for v in dense.values())
  assert all(np.isfinite(v).all() for v in dense.values())


def test_vmapped_seeds_equal_each_seed():
  rng = np.random.default_rng(3)
  num_users, num_items = 8, 30
  train, test = random_splits(rng, num_users, num_items, 2)
  params = models.MFParams(*(jnp.asarray(rng.normal(size=shape), jnp.float32)
                             for shape in ((3, num_users, 4),
                                           (3, num_items, 4), (3,))))
  evaluator = full_ranking.make_evaluator(num_items, *train, *test, ks=(5,),
                                          item_chunk=7, user_chunk=3)
  stacked = jax.jit(jax.vmap(evaluator))(params)
  for seed in range(3):
    one = evaluator(jax.tree.map(operator.itemgetter(seed), params))
    for name, value in one.items():
      np.testing.assert_allclose(stacked[name][seed], value, rtol=1e-6)


_SHARDED = textwrap.dedent("""
    import jax, numpy as np
    from dot_vs_learned import ease, full_ranking, models
    assert jax.device_count() == 4
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 10, 120), rng.integers(0, 40, 120)
    pairs = np.unique(users * 40 + items)
    test, train = pairs[::4], np.setdiff1d(pairs, pairs[::4])
    params = models.MFParams(*(jax.numpy.asarray(rng.normal(size=shape))
                               for shape in ((2, 10, 4), (2, 40, 4), (2,))))
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("users",))
    one, four = (full_ranking.make_evaluator(
        40, train // 40, train % 40, test // 40, test % 40, ks=(3,),
        item_chunk=9, user_chunk=2, mesh=m) for m in (None, mesh))
    sharded = jax.jit(jax.vmap(four))(params)
    for seed in range(2):
      want = one(jax.tree.map(lambda x: x[seed], params))
      for name in want:
        np.testing.assert_allclose(sharded[name][seed], want[name], rtol=1e-6)
    # EASE^R scored from B^T's rows, its users sharded: the same metrics.
    x = ease.history_matrix(train // 40, train % 40, 10, 40)
    weights, diag = ease.fit(jax.numpy.asarray(x.T @ x), 5.0)
    model = models.EaseParams(weights, jax.numpy.asarray(x), diag)
    one, four = (full_ranking.make_evaluator(
        40, train // 40, train % 40, test // 40, test % 40, ks=(3,),
        item_chunk=9, user_chunk=2, mesh=m, ease_rows=True)
                 for m in (None, mesh))
    want, got = one(model), jax.jit(four)(model)
    for name in want:
      np.testing.assert_allclose(got[name], want[name], rtol=1e-6)
    print("ok", float(want["ndcg@3"]))
""")


@pytest.mark.slow
def test_users_sharded_over_four_cpu_devices_equal_one():
  env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} "
             "--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", _SHARDED], env=env,
                        capture_output=True, text=True, timeout=120,
                        check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.startswith("ok ")


def test_layout_balances_test_pairs_over_user_chunks():
  test_users = np.repeat(np.arange(8), [7, 1, 1, 1, 5, 1, 1, 3])
  layout = ranking_layout.make_layout(10, np.array([0]), np.array([9]),
                                    test_users, np.arange(20) % 9, ks=(2,),
                                    user_chunk=2, num_shards=2)
  assert layout.users.shape == (4, 2)  # 8 users in 2 x 2 chunks of 2
  # Dealt by decreasing test count, back and forth: 7+1, 5+1, 3+1, 1+1.
  np.testing.assert_array_equal(np.asarray(layout.pair_valid).sum(axis=1),
                                [8, 6, 4, 2])
  assert layout.pair_item.shape == (4, 8)
  np.testing.assert_array_equal(np.sort(np.asarray(layout.users).ravel()),
                                np.arange(8))


def test_bad_inputs_raise():
  ok = (np.array([0, 1]), np.array([2, 3]))
  with pytest.raises(ValueError, match="is also a training pair"):
    ranking_layout.make_layout(5, *ok, np.array([1]), np.array([3]))
  with pytest.raises(ValueError, match=r"test_items must be in 0\.\.4"):
    ranking_layout.make_layout(5, *ok, np.array([1]), np.array([5]))
  with pytest.raises(ValueError, match="same length"):
    ranking_layout.make_layout(5, *ok, np.array([1, 2]), np.array([0]))
  with pytest.raises(ValueError, match="ks must be"):
    ranking_layout.make_layout(5, *ok, np.array([1]), np.array([0]), ks=(0,))
  evaluator = full_ranking.make_evaluator(5, *ok, np.array([3]), np.array([0]))
  with pytest.raises(ValueError, match="the model has 2 users, the test "
                     "pairs need 4"):
    evaluator(table_model(np.zeros((2, 5))))
