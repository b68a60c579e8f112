"""Checkpoints of a training run (orbax): the whole state, the N latest kept.

A checkpoint holds the train state of every seed (parameters, optimizer
state, PRNG keys, epoch), sharded as it was, and JSON metadata (epochs done,
the last and the best evaluation so far). Orbax writes
to a temporary folder and renames it when complete, so a run killed during a
save leaves the previous checkpoint as the latest.
"""

import logging
import pathlib
import shutil

import jax
import orbax.checkpoint as ocp

from dot_vs_learned import distributed
from dot_vs_learned import results


class _QuietOrbax(logging.Filter):
  """Drops orbax's INFO lines (about ten per save) from the absl log."""

  def filter(self, record):
    return record.levelno >= logging.WARNING or "orbax" not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbax())


def _saveable(state):
  """Typed PRNG keys are stored as their raw uint32 data."""
  return state._replace(key=jax.random.key_data(state.key))


def _typed(state, template):
  impl = jax.random.key_impl(template.key)
  return state._replace(key=jax.random.wrap_key_data(state.key, impl=impl))


class Checkpointer:
  """Saves and restores (state, metadata) under workdir/checkpoints/NAME."""

  def __init__(self, workdir, name="train", keep=2):
    self.directory = (pathlib.Path(workdir).absolute() / results.CHECKPOINTS /
                      name)
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def save(self, step: int, state, meta: dict) -> None:
    """Writes checkpoint `step` (epochs done) and waits until it is on disk."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(_saveable(state)),
        meta=ocp.args.JsonSave(meta)))
    self.manager.wait_until_finished()

  def restore_latest(self, template):
    """(state, meta) of the latest checkpoint, or None. `template`: a state
    of the same structure, shapes and shardings (e.g. a fresh init)."""
    step = self.manager.latest_step()
    if step is None:
      return None
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_saveable(template)),
        meta=ocp.args.JsonRestore()))
    return _typed(restored.state, template), restored.meta

  def close(self) -> None:
    self.manager.close()


def remove(workdir, pattern) -> None:
  """Deletes the folders workdir/checkpoints/{pattern} (a glob): those of a
  unit (a sweep shape, a synthetic cell) whose record now replaces them.
  Process 0 only."""
  if distributed.is_writer():
    for folder in (pathlib.Path(workdir) / results.CHECKPOINTS).glob(pattern):
      shutil.rmtree(folder)
