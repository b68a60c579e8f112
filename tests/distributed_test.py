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


@pytest.mark.parametrize("count, devices, want", [
    (1, 2, ""), (2, 2, ""), (4, 2, ""), (8, 8, ""), (3, 8, ""),
    (3, 2, "3 seeds train on 1 of the 2 devices (each device takes as many);"
           " 2 or 4 would use 2"),
    (6, 4, "6 seeds train on 3 of the 4 devices (each device takes as many);"
           " 4 or 8 would use 4")])
def test_unused_devices_note_names_the_counts_that_use_them(count, devices,
                                                            want):
  assert distributed.unused_devices_note(count, devices) == want


if __name__ == "__main__":
  sys.exit(pytest.main([__file__]))
