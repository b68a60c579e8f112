"""Tests of the serving benchmark (serving.py) and the recommend CLI."""

import json
import re
import shutil
import subprocess
import sys
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import checks
from dot_vs_learned import datasets
from dot_vs_learned import models
from dot_vs_learned import ncf
from dot_vs_learned import ncf_config
from dot_vs_learned import recommend
from dot_vs_learned import results
from dot_vs_learned import retrieval
from dot_vs_learned import serving
from dot_vs_learned import serving_config


def _tiny_ncf(name="mf", dim=4):
  config = ncf_config.default_config()
  config.data.update(num_users=120, num_items=200)
  config.model.update(name=name, dim=dim)
  config.train.update(epochs=2, batch_size=256, num_seeds=2,
                      learning_rate=0.05)
  if name != "mf":
    config.train.optimizer = "adam"
  config.eval.every = 2
  return config


@pytest.fixture(scope="module")
def mf_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("mf_run")
  ncf.run(_tiny_ncf(), workdir)
  return workdir


def _tiny_benchmark(**overrides):
  config = serving.default_config()
  config.retrieval.update(nums_items=(300,), dims=(8,), latency_queries=6,
                          recall_queries=20, batch_size=4, mlp_batch_size=2,
                          max_seconds=0.05, index="Flat",
                          search_values=(1,), search_parameter="",
                          chunk_size=128)
  config.retrieval.update(overrides)
  return config


def test_params_are_saved_per_seed(mf_run):
  flat = results.load_params(mf_run)
  assert sorted(flat) == ["mf/bias", "mf/item", "mf/user"]
  assert flat["mf/user"].shape == (2, 120, 4)
  assert flat["mf/item"].shape == (2, 200, 4)
  assert flat["mf/bias"].shape == (2,)
  assert not np.array_equal(flat["mf/user"][0], flat["mf/user"][1])


def test_benchmark_measures_every_method(tmp_path):
  pytest.importorskip("faiss")
  out = serving.run(_tiny_benchmark(), tmp_path)
  rows = {r["method"]: r for r in out["rows"]}
  assert set(rows) == {"dot", "ann", "mlp"}
  for r in rows.values():
    assert (r["n"], r["d"]) == (300, 8)
    assert 5 <= r["queries"] <= 6  # >= 5 even past max_seconds
    assert 0 < r["p50_ms"] <= r["p99_ms"] and r["queries_per_s"] > 0
  # A Flat index is exact: recall 1 at the first search value.
  assert rows["ann"]["recall"] == 1.0 and rows["ann"]["reached_target"]
  assert rows["ann"]["index_mib"] >= 300 * 8 * 4 / 2**20
  table = (tmp_path / "retrieval.md").read_text().splitlines()
  assert len(table) == 2 + 3 and "| 300 | 8 | mlp |" in table[-1]
  # Without an index, its build time and size are "-", as in the README.
  assert table[-1].endswith("| - | - | - |") and "nan" not in str(table)
  assert json.loads((tmp_path / "results.json").read_text())["rows"]
  assert len(results.read_metrics(tmp_path)) == 3


def test_ann_search_stops_at_the_first_value_reaching_the_target(tmp_path):
  pytest.importorskip("faiss")
  config = _tiny_benchmark(nums_items=(3000,), index="HNSW8,Flat",
                           search_parameter="efSearch",
                           ef_construction=16, search_values=(1, 2, 512),
                           methods=("ann",))
  row, = serving.run(config, tmp_path)["rows"]
  curve = row["recall_curve"]
  assert row["search"] == "efSearch=512" and row["reached_target"]
  assert list(curve) == ["1", "2", "512"]
  assert curve["1"] < 0.95 <= curve["512"]


def test_benchmark_on_trained_mf_embeddings(mf_run, tmp_path):
  config = _tiny_benchmark(embeddings_from=str(mf_run), methods=("dot",))
  row, = serving.run(config, tmp_path)["rows"]
  assert (row["n"], row["d"]) == (200, 4)


@pytest.mark.slow  # trains a GMF run
def test_trained_embeddings_must_come_from_mf(tmp_path):
  gmf = tmp_path / "gmf"
  ncf.run(_tiny_ncf("gmf", 4), gmf)
  config = _tiny_benchmark(embeddings_from=str(gmf))
  with pytest.raises(checks.ConfigError, match="retrieval.embeddings_from"):
    serving.run(config, tmp_path / "bench")
  assert not (tmp_path / "bench").exists()


@pytest.mark.parametrize("field, value", [
    ("methods", ("dot", "knn")), ("k", 301), ("dims", (1,)),
    ("target_recall", 1.5), ("latency_queries", 0), ("nums_items", ())])
def test_bad_config_names_the_field_and_writes_nothing(tmp_path, field, value):
  config = _tiny_benchmark(**{field: value})
  with pytest.raises(checks.ConfigError, match=f"retrieval.{field}="):
    serving.run(config, tmp_path / "bench")
  assert not (tmp_path / "bench").exists()


def _refused(config, tmp_path, message):
  """serving.run refuses `config` with exactly `message` (ending "...": a
  message that begins so), writing nothing."""
  pattern = (f"^{re.escape(message[:-3])}" if message.endswith("...") else
             f"^{re.escape(message)}$")
  with pytest.raises(checks.ConfigError, match=pattern):
    serving.run(config, tmp_path / "bench")
  assert not (tmp_path / "bench").exists()


def _broken_run(mf_run, tmp_path, name, content):
  """A copy of the MF run with file `name` replaced by `content`."""
  run = tmp_path / "run"
  shutil.copytree(mf_run, run)
  if callable(content):
    content(run / name)
  elif content is None:
    (run / name).unlink()
  else:
    (run / name).write_bytes(content)
  return run


def _npz(**arrays):
  return lambda path: np.savez(path, **arrays)


_FLOATS = ("mf/user [seeds, users, d], mf/item [seeds, items, d], "
           "mf/bias [seeds], floats")


def _garbled_user(path):
  """The run's params.npz with mf/user's bytes no .npy array."""
  with np.load(path) as arrays:
    flat = {name: arrays[name] for name in arrays.files}
  with zipfile.ZipFile(path, "w") as z:
    for name, value in flat.items():
      with z.open(f"{name}.npy", "w") as f:
        if name == "mf/user":
          f.write(b"garbage")
        else:
          np.save(f, value)


@pytest.mark.parametrize("name, content, requirement", [
    (results.CONFIG, b"{bad", "its config.json: unreadable (JSONDecodeError: "
     "Expecting property name enclosed in double quotes: line 1 column 2 "
     "(char 1))"),
    (results.CONFIG, b"[1, 2]", "its config.json: a JSON list, not an object"),
    (results.CONFIG, b"{}", "its config.json names no model (model.name)"),
    (results.PARAMS, lambda path: path.write_bytes(path.read_bytes()[:500]),
     "cannot read params.npz: not a zip archive (truncated?)"),
    (results.PARAMS, _garbled_user, f"its params.npz holds no MF tables "
     f"({_FLOATS})"),
    (results.PARAMS, None, "holds no params.npz"),
    (results.PARAMS, _npz(**{"mf/u": np.zeros((1, 2, 2))}),
     f"its params.npz holds no MF tables ({_FLOATS})"),
    (results.PARAMS, _npz(**{"mf/user": np.full((1, 3, 2), np.nan),
                             "mf/item": np.ones((1, 3, 2)),
                             "mf/bias": np.zeros(1)}),
     "its params.npz holds non-finite values (seed 0): a diverged run"),
    (results.RESULTS, None, "holds no finished run (no results.json); train "
     "one with python -m dot_vs_learned.main"),
    (results.FAILURE, b"{}", "holds a failed run (failure.json); the "
     "benchmark needs a finished 'mf' run")])
def test_unreadable_trained_run_is_one_line_naming_the_field(
    mf_run, tmp_path, name, content, requirement):
  run = _broken_run(mf_run, tmp_path, name, content)
  config = _tiny_benchmark(embeddings_from=str(run), methods=("dot",))
  _refused(config, tmp_path, f"config field retrieval.embeddings_from="
           f"{str(run)!r}: {requirement}")


def test_missing_trained_run_is_one_line_naming_the_field(tmp_path):
  for path, what in ((tmp_path / "none", "no such directory"),
                     (tmp_path / "file", "not a directory")):
    if what != "no such directory":
      path.write_text("")
    config = _tiny_benchmark(embeddings_from=str(path))
    _refused(config, tmp_path, f"config field retrieval.embeddings_from="
             f"{str(path)!r}: {what}")


@pytest.mark.parametrize("field, value, requirement", [
    ("seed", -1, "must be a whole number in [0, 2147483647]"),
    ("search_values", (-5,), "values must be finite numbers > 0"),
    ("search_values", (16, 0.0), "values must be finite numbers > 0"),
    ("ef_construction", 0, "must be a whole number >= 1"),
    ("nums_items", (300, 2.5), "sizes must be whole numbers >= 1"),
    ("nums_items", (300, 300), "each value once (one is repeated)"),
    ("dims", (8, 4, 8), "each value once (one is repeated)"),
    ("methods", ("dot", "dot"), "each value once (one is repeated)"),
    ("search_values", (1, 2, 1), "each value once (one is repeated)")])
def test_bad_value_is_one_line_naming_the_field(tmp_path, field, value,
                                                requirement):
  _refused(_tiny_benchmark(**{field: value}), tmp_path,
           f"config field retrieval.{field}={value!r}: {requirement}")


@pytest.mark.parametrize("overrides, field, requirement", [
    # faiss's own reason follows, in words that may change with its version.
    (dict(index="Bogus"), "index", "faiss cannot build it at d=8: ..."),
    (dict(index="PQ3"), "index", "faiss cannot build it at d=8: ..."),
    (dict(index="IVF1024,Flat"), "index", "its 1024 IVF lists need as many "
     "training items; the smallest catalogue has 300"),
    (dict(index="PQ4x9"), "index", "faiss cannot train it at d=8 on the "
     "smallest catalogue's 300 items: ..."),
    (dict(index="OPQ4,IVF4,PQ4x9", nums_items=(2000, 300)), "index",
     "faiss cannot train it at d=8 on the smallest catalogue's 300 items: "
     "..."),
    (dict(index="HNSW8,Flat", search_parameter="bogus"), "search_parameter",
     "faiss cannot set it to 1 on a 'HNSW8,Flat' index (efSearch for HNSW, "
     "nprobe for IVF, '' for none)"),
    (dict(index="IVF4,Flat", search_parameter="efSearch"), "search_parameter",
     "faiss cannot set it to 1 on a 'IVF4,Flat' index (efSearch for HNSW, "
     "nprobe for IVF, '' for none)")])
def test_bad_faiss_index_is_refused_before_the_workdir(tmp_path, overrides,
                                                       field, requirement):
  pytest.importorskip("faiss")
  config = _tiny_benchmark(**overrides)
  _refused(config, tmp_path, f"config field retrieval.{field}="
           f"{config.retrieval[field]!r}: {requirement}")


def test_a_product_quantizer_with_enough_items_runs(tmp_path):
  pytest.importorskip("faiss")
  # PQ4x4's code books have 16 centroids each: the 300 items train them
  # (so would PQ4's 256, but faiss takes 8 s here to train those, twice).
  rows = serving.run(_tiny_benchmark(index="PQ4x4", methods=("dot", "ann")),
                     tmp_path / "bench")["rows"]
  assert [row["method"] for row in rows] == ["dot", "ann"]
  assert rows[1]["index"] == "PQ4x4" and 0 < rows[1]["recall"] <= 1


def test_cell_bytes_counts_the_items_index_and_mlp():
  r = _tiny_benchmark(methods=("dot", "ann", "mlp"), mlp_chunk_mib=64
                      ).retrieval
  items = 4 * 10**6 * 64
  assert serving_config.cell_bytes(10**6, 64, r) == (
      items + 10**6 * (512 + 256) + 2**28, 4 * items + 2**27)
  r.methods = ("dot",)
  assert serving_config.cell_bytes(10**6, 64, r) == (items + 2**28,
                                                     2 * items)
  r.methods = ("ann",)
  assert serving_config.cell_bytes(10**6, 64, r) == (
      items + 10**6 * 768 + 2**28, 2 * items)


def test_a_grid_beyond_the_memory_is_refused_before_the_workdir(
    tmp_path, monkeypatch):
  monkeypatch.setattr(checks, "host_bytes", lambda: 2**32)  # 4 GiB
  monkeypatch.setattr(checks, "available_bytes", lambda: 2**32)
  # d = 64, 10^7 items: 2.4 GiB of items, 5 times that for the MLP.
  config = _tiny_benchmark(nums_items=(300, 10**7), dims=(8, 64),
                           methods=("dot", "mlp"))
  _refused(config, tmp_path, "config field retrieval.nums_items=(300, "
           "10000000): the cell n=10000000, d=64 (retrieval.dims) with "
           "methods ('dot', 'mlp') needs about 12.3 GiB of host memory, more "
           "than 90% of its 4.0 GiB")
  # The same grid fits 16 GiB.
  monkeypatch.setattr(checks, "host_bytes", lambda: 2**34)
  serving_config.validate(config)


def test_ann_without_faiss_is_refused_before_the_workdir(tmp_path,
                                                         monkeypatch):
  def no_faiss():
    raise ImportError("no faiss")
  monkeypatch.setattr(retrieval, "_faiss", no_faiss)
  _refused(_tiny_benchmark(methods=("dot", "ann")), tmp_path,
           "config field retrieval.methods=('dot', 'ann'): 'ann' needs "
           "faiss, not installed: pip install 'dot_vs_learned[ann]' "
           "(faiss-cpu), or leave 'ann' out")


def test_recommend_ranks_unseen_items_by_the_model(mf_run):
  config, scores, ids = recommend.recommend_from_workdir(mf_run, [0, 7], 5,
                                                         seed_index=1)
  d = datasets.load_dataset(config.data)
  flat = results.load_params(mf_run)
  params = models.unflatten_params({k: v[1] for k, v in flat.items()})
  for user, row_ids, row_scores in zip([0, 7], ids, scores):
    full = np.array(models.mf_score(params, jnp.full(200, user),
                                      jnp.arange(200)))
    seen = d.train_items[d.train_users == user]
    assert seen.size and not set(row_ids) & set(seen)
    full[seen] = -np.inf
    want = np.argsort(-full, kind="stable")[:5]
    np.testing.assert_array_equal(row_ids, want)
    np.testing.assert_allclose(row_scores, full[want], rtol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(users=[120], k=5), r"--users: \[120\] out of range"),
    (dict(users=[-1], k=5), r"--users: \[-1\]"),
    (dict(users=[0], k=5, seed_index=2), "--seed_index=2"),
    (dict(users=[0], k=0), "--k=0"),
    (dict(users=[0], k=200), "--k=200: user 0: only"),
])
def test_recommend_errors_name_the_flag(mf_run, kwargs, message):
  with pytest.raises(recommend.RecommendError, match=message):
    recommend.recommend_from_workdir(mf_run, **kwargs)


def test_recommend_cli(mf_run, tmp_path):
  cli = [sys.executable, "-m", "dot_vs_learned.recommend"]
  ok = subprocess.run(cli + [f"--workdir={mf_run}", "--users=3,4", "--k=3"],
                      capture_output=True, text=True, check=True)
  lines = ok.stdout.splitlines()
  assert lines[0].startswith("mf d=4 on default") and len(lines) == 3
  assert lines[1].startswith("user 3: ") and lines[1].count("(") == 3
  bad = subprocess.run(cli + [f"--workdir={tmp_path}", "--users=0"],
                       capture_output=True, text=True)
  assert bad.returncode == 1 and "Traceback" not in bad.stderr
  assert "holds no finished run" in bad.stderr
