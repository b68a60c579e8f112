"""Multi-host runs: one process per host, the point axis over all their devices.

`python -m dot_vs_learned.main ... --distributed` on every host (a Cloud TPU
pod slice, a SLURM or Open MPI job: jax.distributed.initialize finds the
coordinator itself; elsewhere pass --coordinator_address, --num_processes and
--process_id). Every process runs the same program on the global device mesh;
process 0 alone writes the workdir, which must be storage that every host
sees (NFS, a GCS bucket through gcsfuse), as orbax's checkpoints need anyway.
One process (the default) changes nothing.
"""

import logging as std_logging

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np


def initialize(coordinator_address=None, num_processes=None,
               process_id=None) -> None:
  """jax.distributed.initialize, with CPU collectives (gloo) for CPU hosts."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)
  logging.info("process %d of %d; %d local of %d devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(),
               jax.device_count())


def is_writer() -> bool:
  """Whether this process writes results (process 0)."""
  return jax.process_index() == 0


def sync(name: str) -> None:
  """Waits until every process reaches this point (no-op with one)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def to_global(tree, sharding):
  """Places host values (the same on every process) on `sharding`, which
  may span the devices of several processes. Typed PRNG keys keep their
  type; arrays already spread over several processes are resharded."""

  def place(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return jax.jit(lambda y: y, out_shardings=sharding)(x)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(place(jax.random.key_data(x)),
                                      impl=jax.random.key_impl(x))
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding,
                                        lambda index: host[index])

  return jax.tree.map(place, tree)


def fetch(tree):
  """jax.device_get that also gathers arrays spread over processes."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _devices_used(count, devices) -> int:
  """How many of `devices` a mesh of `count` points uses on one process:
  the most that divide the count evenly."""
  return max(n for n in range(1, devices + 1) if count % n == 0)


def padded_count(count, devices=None) -> int:
  """`count` points rounded up to a multiple of the devices they can use:
  min(count, devices) on one process, every device over several. The
  padding points repeat the last point and are dropped from the results;
  9 points on 2 devices train as 10, 5 per device (on the 2-core CPU with 2
  host devices: docs/results.md), 9 on 8 GPUs as 16, instead of 9 on one.
  devices: how many (default: all of them)."""
  devices = jax.device_count() if devices is None else devices
  step = devices if jax.process_count() > 1 else min(count, devices)
  return -(-count // step) * step


def padding_index(count, devices=None) -> np.ndarray:
  """The points a program trains when `count` points are padded to the
  devices (padded_count): 0 .. count - 1, then the last one repeated.
  devices: as padded_count's."""
  return np.minimum(np.arange(padded_count(count, devices)), count - 1)


def padded_name(name, count, padded) -> str:
  """A checkpoint folder's name that says its padding: "{name}" or
  "{name}_padded{padded}". Resumed on another number of devices, a program
  then starts afresh rather than restore states of another shape."""
  return f"{name}_padded{padded}" if padded > count else name


def point_mesh(count):
  """A 1-D mesh ("points") over the most devices that divide `count` points
  (padded_count makes that all the devices it can use);
  None if that is one device (then nothing is sharded). Over several
  processes that do not all get points: every device, axis "replicas"."""
  devices = jax.devices()
  used = _devices_used(count, len(devices))
  if jax.process_count() > 1 and used < len(devices):
    # Processes share a mesh only if it spans them all: every device then
    # computes every point (axis "replicas": nothing is split).
    return jax.sharding.Mesh(np.array(devices), ("replicas",))
  if used == 1:
    return None
  return jax.sharding.Mesh(np.array(devices[:used]), ("points",))


class _NoTpuProbe(std_logging.Filter):
  """Drops JAX's INFO line about a missing TPU library on machines without
  one ("Unable to initialize backend 'tpu'")."""

  def filter(self, record):
    return not (record.levelno < std_logging.WARNING and
                "Unable to initialize backend" in record.getMessage())


def quiet_backend_probe() -> None:
  """Keeps that line out of a command's log (call before app.run)."""
  std_logging.getLogger("jax._src.xla_bridge").addFilter(_NoTpuProbe())
