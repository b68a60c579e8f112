"""Multi-host runs (distributed.py): two CPU processes, two devices each."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from dot_vs_learned import distributed
from dot_vs_learned import results
from dot_vs_learned import sweep
from dot_vs_learned import tuning
import tuning_test
from tuning_test import REPO

_PROCESS = """
import json, pathlib, sys
sys.path.insert(0, {tests!r})
from dot_vs_learned import distributed, tuning
import tuning_test
distributed.initialize({address!r}, 2, {index})
import jax
config = tuning_test.tiny_config(pathlib.Path({root!r}))
out = tuning.run(config, {workdir!r})
print(json.dumps(dict(index=jax.process_index(), devices=jax.device_count(),
                      out=out)))
"""


@pytest.fixture(scope="module")
def split_dirs(tmp_path_factory):
  return tuning_test.make_split_dirs(tmp_path_factory.mktemp("tuning_data"))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_run_the_sweep_as_one_process_does(split_dirs,
                                                         tmp_path):
  config = tuning_test.tiny_config(split_dirs)
  single = tuning.run(config, tmp_path / "single")
  address = f"127.0.0.1:{_free_port()}"
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ['XLA_FLAGS']} "
             "--xla_force_host_platform_device_count=2")
  procs = [subprocess.Popen(
      [sys.executable, "-c", _PROCESS.format(
          tests=str(REPO / "tests"), address=address, index=i,
          root=str(split_dirs), workdir=str(tmp_path / "multi"))],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
      cwd=REPO) for i in range(2)]
  outs = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 0, stderr[-3000:]
    outs.append(json.loads(stdout.strip().splitlines()[-1]))
  assert [o["index"] for o in outs] == [0, 1]
  assert all(o["devices"] == 4 for o in outs)
  # Both processes return what one process computes; the sweep's 8 points
  # were sharded over the 4 devices of both.
  for o in outs:
    assert o["out"]["selected"] == single["selected"]
    for dim in ("4", "6"):
      assert (o["out"]["final"][dim]["hr@10"] ==
              single["final"][dim]["hr@10"])
  multi = sweep.done_cells(tmp_path / "multi")
  for cell, record in sweep.done_cells(tmp_path / "single").items():
    assert multi[cell]["devices"] == 4 and record["devices"] == 1
    for a, b in zip(record["curves"], multi[cell]["curves"]):
      np.testing.assert_array_equal(a["hr"], b["hr"])
      np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)
  # One writer: each cell recorded once, no stray temporary files.
  lines = (tmp_path / "multi" / sweep.CELLS).read_text().splitlines()
  assert len(lines) == len(multi) == 2
  assert not list((tmp_path / "multi").rglob(".*.json.*"))


def test_one_process_places_and_fetches_as_device_put_and_get():
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("points",))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("points"))
  keys = jax.random.split(jax.random.key(3), 4)
  placed = distributed.to_global({"x": np.arange(4.0), "keys": keys}, split)
  assert placed["x"].sharding == split
  assert jax.dtypes.issubdtype(placed["keys"].dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(placed["keys"]),
                                jax.random.key_data(keys))
  np.testing.assert_array_equal(distributed.fetch(placed["x"]),
                                np.arange(4.0))
  assert distributed.is_writer()
  distributed.sync("no-op with one process")


def test_padding_repeats_the_last_point_up_to_a_multiple_of_the_devices():
  np.testing.assert_array_equal(distributed.padding_index(3, 2), [0, 1, 2, 2])
  np.testing.assert_array_equal(distributed.padding_index(4, 2), [0, 1, 2, 3])
  np.testing.assert_array_equal(distributed.padding_index(9, 8),
                                list(range(9)) + [8] * 7)
  np.testing.assert_array_equal(distributed.padding_index(2, 8), [0, 1])
  np.testing.assert_array_equal(distributed.padding_index(1, 1), [0])
  assert distributed.padded_name("train", 3, 4) == "train_padded4"
  assert distributed.padded_name("gmf", 4, 4) == "gmf"


def _run_cli(workdir, devices, *flags):
  """A 3-seed MF run on generated data through the entry point, on
  `devices` simulated host devices; returns its log."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"{os.environ['XLA_FLAGS']} "
             f"--xla_force_host_platform_device_count={devices}")
  return subprocess.run(
      [sys.executable, "-m", "dot_vs_learned.main",
       "--config=configs/default.py", f"--workdir={workdir}",
       "--config.data.num_users=120", "--config.data.num_items=200",
       "--config.model.dim=4", "--config.train.epochs=3",
       "--config.eval.every=2", "--config.train.num_seeds=3",
       "--config.eval.full_ranking=True", *flags],
      cwd=REPO, env=env, check=True, capture_output=True, text=True).stderr


@pytest.mark.slow  # two runs in subprocesses
def test_seeds_padded_to_the_devices_give_the_unpadded_results(tmp_path):
  one, two = tmp_path / "one", tmp_path / "two"
  assert "trained as" not in _run_cli(one, 1)
  log = _run_cli(two, 2, "--config.checkpoint.keep_finished=True")
  # 3 seeds train as 4, 2 on each device; the 4th is dropped.
  assert "train.num_seeds=3: trained as 4" in log
  assert [p.name for p in (two / results.CHECKPOINTS).iterdir()] == [
      "train_padded4"]
  want = results.read_metrics(one)
  got = results.read_metrics(two)
  assert [r["epoch"] for r in got] == [r["epoch"] for r in want] == [2, 3]
  for a, b in zip(want, got):
    for name in ("hr@10", "ndcg@10", "full/hr@10", "full/ndcg@10"):
      assert len(b[name]["per_seed"]) == 3
      np.testing.assert_allclose(b[name]["per_seed"], a[name]["per_seed"],
                                 atol=1e-6, err_msg=name)
    np.testing.assert_allclose(b["loss"]["per_seed"], a["loss"]["per_seed"],
                               rtol=1e-4)
  params_one, params_two = results.load_params(one), results.load_params(two)
  assert params_one.keys() == params_two.keys()
  for name, value in params_one.items():
    assert value.shape[0] == 3
    np.testing.assert_allclose(params_two[name], value, rtol=1e-4,
                               atol=1e-6, err_msg=name)


if __name__ == "__main__":
  sys.exit(pytest.main([__file__]))
