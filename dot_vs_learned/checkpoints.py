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

from absl import logging as absl_logging
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
    """(state, meta) of the latest readable checkpoint, or None.

    `template`: a state of the same structure, shapes and shardings (e.g. a
    fresh init). A checkpoint that cannot be read (truncated, bad JSON, a
    missing item) is logged and moved aside to checkpoints/NAME.unreadable/,
    never deleted, and the one before it is tried.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_saveable(template)),
            meta=ocp.args.JsonRestore()))
        if not isinstance(restored.meta, dict):
          raise ValueError(f"metadata {restored.meta!r} is not a JSON object")
        return _typed(restored.state, template), restored.meta
      except Exception as e:  # pylint: disable=broad-except
        self._set_aside(step, e)
    return None

  def _set_aside(self, step, error) -> None:
    aside = self.directory.with_name(self.directory.name + ".unreadable")
    message = str(error).splitlines()[0] if str(error) else ""
    absl_logging.warning(
        "checkpoint %s/%d cannot be read (%s: %s); moved to %s, trying the "
        "one before it", self.directory, step, type(error).__name__,
        message[:200], aside)
    if distributed.is_writer():
      aside.mkdir(parents=True, exist_ok=True)
      shutil.move(str(self.directory / str(step)), str(aside / str(step)))
    distributed.sync(f"set aside {self.directory}/{step}")
    self.manager.reload()

  def close(self) -> None:
    self.manager.close()


def remove_finished(workdir, names) -> None:
  """Deletes a finished run's checkpoints/NAME folders, then checkpoints/
  if nothing else is left (folders moved aside as unreadable stay).
  Process 0 only."""
  for name in names:
    remove(workdir, name)
  folder = pathlib.Path(workdir) / results.CHECKPOINTS
  if distributed.is_writer() and folder.is_dir() and not any(
      folder.iterdir()):
    folder.rmdir()


def remove(workdir, pattern) -> None:
  """Deletes the folders workdir/checkpoints/{pattern} (a glob): those of a
  unit (a sweep shape, a synthetic cell) whose record now replaces them.
  Process 0 only."""
  if distributed.is_writer():
    for folder in (pathlib.Path(workdir) / results.CHECKPOINTS).glob(pattern):
      shutil.rmtree(folder)
