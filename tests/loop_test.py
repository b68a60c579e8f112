"""Tests of the run driver (loop.py) and its checkpoint fallback."""

import logging
import re
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dot_vs_learned import checkpoints
from dot_vs_learned import loop


class State(NamedTuple):
  params: Any
  key: jax.Array


def _states(points=3):
  keys = jax.random.split(jax.random.key(0), points)
  return State(jnp.zeros((points, 2), jnp.float32), keys)


@jax.jit
def _advance(states, rate):
  """One epoch: params grow by `rate` per point; loss = their sum."""
  params = states.params + rate[:, None]
  return State(params, states.key), {"loss": params.sum(axis=1)}


def _advance_n(rate):
  def advance(states, n):
    for _ in range(n):
      states, metrics = _advance(states, rate)
    return states, metrics
  return advance


def _record(done, metrics, _):
  return {"epoch": done, "loss": np.asarray(metrics["loss"]).tolist()}


RATE = jnp.array([1.0, 2.0, 3.0])


def test_records_every_chunk_and_the_last_epoch():
  seen = []
  out = loop.train(_states(), _advance_n(RATE), epochs=5, every=2,
                   record=_record, on_record=seen.append)
  assert [r["epoch"] for r in out.history] == [2, 4, 5]
  assert seen == out.history
  assert out.history[-1]["loss"] == [10.0, 20.0, 30.0]
  assert out.failed_at.tolist() == [0, 0, 0]


def test_nan_raises_or_marks_the_point_failed():
  rate = jnp.array([1.0, jnp.nan, 3.0])
  with pytest.raises(FloatingPointError,
                     match=r"\[p\] training diverged by epoch 2: .*nan.* lr"):
    loop.train(_states(), _advance_n(rate), epochs=4, every=2,
               record=_record, label="[p] ", hint=" lr")
  out = loop.train(_states(), _advance_n(rate), epochs=4, every=2,
                   record=_record, nan="mark")
  assert out.failed_at.tolist() == [0, 2, 0]
  assert out.history[-1]["loss"][0] == 8.0


def test_resume_replays_the_records_and_ends_as_an_unbroken_run(tmp_path):
  whole = loop.train(_states(), _advance_n(RATE), epochs=6, every=2,
                     record=_record)
  saver = checkpoints.Checkpointer(tmp_path, "train", keep=2)
  loop.train(_states(), _advance_n(RATE), epochs=4, every=2, record=_record,
             saver=saver)  # a run "killed" after its epoch-4 checkpoint
  replayed = []
  out = loop.train(_states(), _advance_n(RATE), epochs=6, every=2,
                   record=_record, saver=saver, on_restore=replayed.extend)
  saver.close()
  assert [r["epoch"] for r in replayed] == [2, 4]
  assert out.history == whole.history
  np.testing.assert_array_equal(out.states.params, whole.states.params)
  np.testing.assert_array_equal(jax.random.key_data(out.states.key),
                                jax.random.key_data(whole.states.key))


@pytest.mark.parametrize("damage", ["bad_json", "missing_item", "truncated"])
def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(
    tmp_path, damage):
  saver = checkpoints.Checkpointer(tmp_path, "train", keep=2)
  loop.train(_states(), _advance_n(RATE), epochs=4, every=2, record=_record,
             saver=saver)
  saver.close()
  newest = tmp_path / "checkpoints" / "train" / "4"
  if damage == "bad_json":
    (newest / "meta" / "metadata").write_text('{"done": 4, "hist')
  elif damage == "missing_item":
    for f in (newest / "state").rglob("*"):
      if f.is_file():
        f.unlink()
  else:
    for f in (newest / "state").rglob("manifest.ocdbt"):
      f.write_bytes(f.read_bytes()[:7])
  saver = checkpoints.Checkpointer(tmp_path, "train", keep=2)
  state, meta = saver.restore_latest(_states())
  assert meta["done"] == 2
  np.testing.assert_array_equal(state.params, np.repeat(
      2 * np.asarray(RATE)[:, None], 2, axis=1))
  aside = tmp_path / "checkpoints" / "train.unreadable" / "4"
  assert aside.is_dir() and not newest.exists()  # moved, not deleted
  assert (tmp_path / "checkpoints" / "train" / "2").is_dir()
  out = loop.train(_states(), _advance_n(RATE), epochs=4, every=2,
                   record=_record, saver=saver)
  saver.close()
  assert out.history[-1]["loss"] == [8.0, 16.0, 24.0]


def test_the_eta_leaves_out_the_compiling_chunk():
  now = iter([0.0, 100.0, 102.0, 106.0])
  clock = loop._Clock(0, lambda: next(now))
  assert clock.tick(1) == 100.0  # only the first chunk timed so far
  assert clock.tick(2) == 2.0
  assert clock.tick(4) == 2.0


def test_a_long_chunk_logs_its_progress_while_it_runs(caplog):
  advance = _advance_n(RATE)

  def slow(states, n):  # the second chunk runs much longer than the first
    time.sleep(0.05 if int(states.params[0, 0]) == 0 else 1.0)
    return advance(states, n)

  with caplog.at_level(logging.INFO):
    out = loop.train(_states(), slow, epochs=3, every=1, record=_record,
                     heartbeat=0.2)
  assert out.history[-1]["epoch"] == 3
  beats = [r.getMessage() for r in caplog.records if "running for" in
           r.getMessage()]
  by_epoch = {e: [b for b in beats if b.startswith(f"epoch {e}/3 running")]
              for e in (1, 2, 3)}
  # Epoch 1 has no estimate; epoch 2 runs past epoch 1's time; epoch 3 is
  # expected to take epoch 2's (1 s), so its first beat has time left.
  assert all(b.endswith("(compiling, then the first chunk)")
             for b in by_epoch[1])
  assert by_epoch[2] and re.search(r"\(past the expected 0m0\ds\)$",
                                   by_epoch[2][-1])
  assert by_epoch[3] and re.search(r"\(about 0m0\ds left\)$",
                                   by_epoch[3][0])
