"""The device check's runner: sections in a worker process, within budgets.

A section is a function `fn(spec, report) -> result` (a JSON-able dict);
`report(part)` sends a partial result, kept if the section does not finish.
run_sections runs them one at a time in a spawned worker process, each
within its budget and a global deadline: a section that raises is recorded
as `error`, one past its time is killed (`timeout`, with its last partial
result), a dead worker (out of memory, say) is `crashed`; a fresh worker
runs the next section. A worker is also replaced when the next section
needs other XLA_FLAGS, which act only before JAX starts (spawn starts
any process with its own environment variables). The calling process is
not to start JAX, so that the worker has the accelerator to itself.
Sections run without matplotlib: their figures would stay in the scratch
folder, which is deleted, and a lent machine may not have it.
For the sections: measure_until, the budget of those that measure several
things in turn, and benchmark, which imports a benchmark script.
"""

import importlib
import multiprocessing
import os
import sys
import threading
import time
import traceback


def benchmark(name):
  """Imports benchmarks/<name>.py for its functions. The benchmark scripts
  define absl flags at import, some with the same names (data_dir, ...), so
  each one's flags are unregistered: their mains are not run here."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(name)
  for flag in flags.FLAGS.get_flags_for_module(name):
    delattr(flags.FLAGS, flag.name)
  return module


def measure_until(deadline, items, measure, report=None) -> list[dict]:
  """dict(item, **measure(**item)) for each item while the last one's time
  still fits before `deadline`, else dict(item, skipped=why); report(rows)
  after each measurement."""
  rows, last = [], 0.0
  for item in items:
    if time.time() + last > deadline:
      rows.append(dict(item, skipped="no time left in the section's budget"))
      continue
    start = time.time()
    rows.append(dict(item, **measure(**item)))
    last = time.time() - start
    if report is not None:
      report(rows)
  return rows


def spawn(target, args, **environ):
  """A started daemon process, spawned (a fresh interpreter: no JAX state
  is inherited), with `environ` added to its environment variables."""
  context = multiprocessing.get_context("spawn")
  saved = dict(os.environ)
  os.environ.update(environ)
  try:  # the child copies the environment when it starts
    process = context.Process(target=target, args=args, daemon=True)
    process.start()
  finally:
    os.environ.clear()
    os.environ.update(saved)
  return process


def _worker(conn, log_path) -> None:
  """Runs the (call id, function, spec) tasks it receives; output to the log."""
  fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  os.dup2(fd, 1)
  os.dup2(fd, 2)
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  # plotting.pyplot then logs that matplotlib is missing and draws nothing.
  sys.modules["matplotlib"] = None
  lock = threading.Lock()

  def send(*message):
    with lock:
      conn.send(message)

  while (task := conn.recv()) is not None:
    call, fn, spec = task
    print(f"== {fn.__name__} ({time.strftime('%H:%M:%S')})", flush=True)
    try:
      send(call, "ok", fn(spec, lambda part, c=call: send(c, "partial", part)))
    except Exception as e:  # pylint: disable=broad-except
      send(call, "error", f"{type(e).__name__}: {e}", traceback.format_exc())


class Worker:
  """A spawned process that runs sections; killed when one runs too long."""

  def __init__(self, xla_flags, log_path):
    self.conn, child = multiprocessing.get_context("spawn").Pipe()
    self.xla_flags, self.calls = xla_flags, 0
    self.process = spawn(_worker, (child, log_path), XLA_FLAGS=" ".join(
        f for f in (os.environ.get("XLA_FLAGS", ""), xla_flags) if f))
    child.close()

  def call(self, fn, spec, timeout):
    """(status, result, error); status: ok, error, timeout or crashed. The
    result of a section that did not finish is its last partial report."""
    self.calls += 1
    self.conn.send((self.calls, fn, spec))
    end, partial = time.time() + timeout, None
    while (left := end - time.time()) > 0:
      try:
        if not self.conn.poll(min(left, 1.0)):
          continue
        call, kind, *payload = self.conn.recv()
      except (EOFError, OSError):
        self.process.join(5)
        return "crashed", partial, (f"the worker died (exit code "
                                    f"{self.process.exitcode}); see "
                                    "device_check.log")
      if call != self.calls:
        continue  # a late report of an earlier section
      if kind == "partial":
        partial = payload[0]
      elif kind == "ok":
        return "ok", payload[0], None
      else:
        return "error", partial, "\n".join(payload)
    self.kill()
    return "timeout", partial, f"exceeded its budget of {timeout:.0f} s"

  def kill(self) -> None:
    self.process.kill()
    self.process.join(10)

  def stop(self) -> None:
    try:
      self.conn.send(None)
    except OSError:
      pass
    self.process.join(20)
    if self.process.is_alive():
      self.kill()


def run_sections(tasks, deadline, log_path, on_record, min_seconds=5.0):
  """Runs tasks (name, function, budget s, extra XLA_FLAGS, spec) in order,
  each within min(budget, time to `deadline`); on_record(name, record).

  A section's spec gets `deadline`: 80% of its time, after which it starts
  no new measurement.
  """
  worker = None
  try:
    for name, fn, budget, xla_flags, spec in tasks:
      timeout = min(budget, deadline - time.time())
      if timeout < min_seconds:
        on_record(name, {"status": "skipped", "budget_s": budget,
                         "error": "the global deadline leaves no time"})
        continue
      if worker is not None and worker.xla_flags != xla_flags:
        worker.stop()
        worker = None
      worker = worker or Worker(xla_flags, log_path)
      start = time.time()
      status, result, error = worker.call(
          fn, dict(spec, deadline=start + 0.8 * timeout), timeout)
      if status in ("timeout", "crashed"):
        worker = None
      on_record(name, {"status": status, "seconds": time.time() - start,
                       "budget_s": timeout, "xla_flags": xla_flags,
                       "result": result, "error": error})
  finally:
    if worker is not None:
      worker.stop()
