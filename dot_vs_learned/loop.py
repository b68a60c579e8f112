"""The run driver: restore, chunked jitted epochs, NaN policy, checkpoints,
records and progress, shared by NCF runs, sweep programs and synthetic cells.

A program of P points (seeds, or hyperparameter x seed pairs) trains in
chunks of `every` epochs: `advance(states, n)` runs n epochs as one jitted
call and returns the states and per-point metrics with a "loss". After each
chunk the driver checks the loss, makes a JSON record of the chunk, hands it
to `on_record` (a metrics.jsonl line, say), saves a checkpoint with every
record so far, and logs progress with an ETA from steady-state epochs (the
first chunk of a process, which compiles, is left out once a second one is
timed). A chunk that runs longer than `heartbeat` seconds (an epoch of
small batches, a slow device) logs how long it has run and about how long
is left every `heartbeat` seconds, from a host thread: the jitted program
is left as it is. A checkpoint restored at start replays its records through
`on_restore`, so the workdir's lines match the restored state even when a
kill came between a record and its checkpoint, or the file was deleted.
"""

import threading
import time
from typing import Any, Callable, NamedTuple

from absl import logging
import jax
import numpy as np

from dot_vs_learned import distributed

NAN_POLICIES = ("raise", "mark")
HEARTBEAT_SECONDS = 60.0


class Outcome(NamedTuple):
  states: Any
  history: list  # one record per chunk, restored ones included
  failed_at: np.ndarray  # per point: the epoch its loss turned NaN/Inf; 0
  seconds: float  # training time, summed over resumed processes


def format_eta(seconds) -> str:
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else (
      f"{minutes}m{seconds:02d}s")


class _Clock:
  """Seconds per epoch, from the steady chunks once there are any."""

  def __init__(self, done, now=time.time):
    self.now = now
    self.start, self.start_done, self.steady = now(), done, None

  def tick(self, done) -> float:
    now = self.now()
    if self.steady is None:
      per_epoch = (now - self.start) / max(done - self.start_done, 1)
      self.steady = (now, done)
      return per_epoch
    since, since_done = self.steady
    if done == since_done:
      return 0.0
    return (now - since) / (done - since_done)


class _Heartbeat:
  """While a chunk runs, logs every `every` seconds how long it has run and,
  given the expected seconds, about how long is left."""

  def __init__(self, text, expected, every):
    self.text, self.expected, self.every = text, expected, every
    self.done = threading.Event()
    self.thread = threading.Thread(target=self._beat, daemon=True)

  def _beat(self):
    start = time.time()
    while not self.done.wait(self.every):
      ran = time.time() - start
      if self.expected is None:
        left = "compiling, then the first chunk"
      elif ran < self.expected:
        left = f"about {format_eta(self.expected - ran)} left"
      else:
        left = f"past the expected {format_eta(self.expected)}"
      logging.info("%s running for %s (%s)", self.text, format_eta(ran), left)

  def __enter__(self):
    if self.every:
      self.thread.start()

  def __exit__(self, *exc):
    self.done.set()


def train(states, advance: Callable, *, epochs: int, every: int,
          record: Callable, label: str = "", saver=None, save_every=None,
          on_restore: Callable = None, on_record: Callable = None,
          describe: Callable = None, nan: str = "raise",
          hint: str = "", heartbeat: float = HEARTBEAT_SECONDS) -> Outcome:
  """Trains `states` to `epochs` epochs in chunks of `every`; see the module.

  Args:
    states: the initial states (a leading point axis), or a template of the
      checkpoint's when one is restored.
    advance: (states, n) -> (states, metrics); metrics["loss"] is [P].
    epochs: the epoch count to reach.
    every: epochs per chunk (and per record).
    record: (epochs done, host metrics, training seconds) -> a JSON dict.
    label: log prefix, e.g. "[gmf] ".
    saver: a checkpoints.Checkpointer, or None (no resume).
    save_every: save when epochs done is a multiple of it (and at the end);
      None: after every chunk.
    on_restore: called with the restored records (or [] on a fresh start).
    on_record: called with each new record.
    describe: (record, failed_at) -> the log line's metrics text.
    nan: "raise" (FloatingPointError) or "mark" (the point is marked failed
      from that epoch on; the others go on).
    hint: appended to the divergence message (the config fields to look at).
    heartbeat: seconds between the progress lines of a long chunk; 0: none.
  """
  if nan not in NAN_POLICIES:
    raise ValueError(f"nan={nan!r}: must be one of {NAN_POLICIES}")
  num_points = jax.tree.leaves(states)[0].shape[0]
  done, history, seconds = 0, [], 0.0
  failed_at = np.zeros(num_points, np.int64)
  restored = saver.restore_latest(states) if saver is not None else None
  if restored is not None:
    states, meta = restored
    done, history = meta["done"], meta["history"]
    failed_at, seconds = np.array(meta["failed_at"], np.int64), meta["seconds"]
    logging.info("%sresuming from the checkpoint at epoch %d", label, done)
  if on_restore is not None:
    on_restore(history)
  clock, per_epoch = _Clock(done), None
  while done < epochs:
    chunk = min(every, epochs - done)
    start = time.time()
    epochs_text = (f"epoch {done + 1}" if chunk == 1 else
                   f"epochs {done + 1}-{done + chunk}")
    with _Heartbeat(f"{label}{epochs_text}/{epochs}",
                    None if per_epoch is None else per_epoch * chunk,
                    heartbeat):
      states, metrics = advance(states, chunk)
      metrics = distributed.fetch(metrics)
    seconds += time.time() - start
    done += chunk
    loss = np.asarray(metrics["loss"])
    bad = ~np.isfinite(loss)
    if bad.any() and nan == "raise":
      raise FloatingPointError(
          f"{label}training diverged by epoch {done}: loss per point "
          f"{loss.tolist()}{hint}")
    failed_at[bad & (failed_at == 0)] = done
    history.append(record(done, metrics, seconds))
    if on_record is not None:
      on_record(history[-1])
    if saver is not None and (save_every is None or done % save_every == 0
                              or done == epochs):
      saver.save(done, states, {"done": done, "history": history,
                                "failed_at": failed_at.tolist(),
                                "seconds": seconds})
    per_epoch = clock.tick(done)
    text = describe(history[-1], failed_at) if describe else ""
    logging.info("%sepoch %d/%d  %s  %.2f s/epoch  ETA %s", label, done,
                 epochs, text, per_epoch,
                 format_eta(per_epoch * (epochs - done)))
  return Outcome(states, history, failed_at, seconds)
