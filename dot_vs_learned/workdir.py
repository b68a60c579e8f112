"""One rule for every experiment's workdir: lock, resume, refuse, overwrite.

`open_workdir` is how every experiment (ncf, tuning, synthetic, retrieval)
takes its --workdir:
  * the path must be a writable folder (or creatable); a file, a folder under
    a file, a read-only place or /proc is refused;
  * an exclusive lock (`.lock`, flock): a second process on the same workdir
    fails at once, naming the holder's pid;
  * a finished run (results.json) is kept unless --overwrite;
  * an unfinished or failed run of the same config and the same input files
    resumes (a failed run from its latest checkpoint, its failure.json
    dropped); another config, or changed input files, is refused with what
    changed, unless --overwrite, which removes the experiment's outputs first;
  * the sha256 of each input file is stored in `inputs.json` beside
    config.json.
`use` (a context) writes failure.json for every experiment whose run
raises. In a multi-host run
process 0 alone locks and writes.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import shutil

from dot_vs_learned import atomic
from dot_vs_learned import distributed
from dot_vs_learned import results

LOCK = ".lock"
INPUTS = "inputs.json"
# What any experiment writes; --overwrite removes these and `outputs`.
COMMON_OUTPUTS = (results.CONFIG, INPUTS, results.METRICS,
                  results.METRICS + ".failed", results.RESULTS,
                  results.FAILURE, results.PARAMS, results.CHECKPOINTS)

WorkdirError = results.WorkdirError


def sha256(path, block=1 << 20) -> str:
  """The hex sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(block):
      digest.update(chunk)
  return digest.hexdigest()


def fingerprint(paths) -> dict[str, str]:
  """{absolute path: sha256} of the input files."""
  return {str(pathlib.Path(p).resolve()): sha256(p) for p in paths}


def _flat(tree, prefix=""):
  if not isinstance(tree, dict):
    return {prefix: tree}
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, f"{prefix}{key}." if isinstance(value, dict)
                     else f"{prefix}{key}"))
  return out


def config_changes(old, new, limit=5) -> str:
  """'field: old -> new' for the first `limit` differing config fields."""
  a, b = _flat(old), _flat(json.loads(json.dumps(new)))
  changed = [f"{k}: {a.get(k, '(none)')!r} -> {b.get(k, '(none)')!r}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
  more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
  return "; ".join(changed[:limit]) + more


def check_path(workdir, flag="--workdir") -> pathlib.Path:
  """Refuses a folder that cannot hold results (WorkdirError naming `flag`);
  returns it absolute."""
  if not str(workdir).strip():  # pathlib would make "" the current folder
    raise WorkdirError(f"{flag}={workdir}: an empty path; give a folder "
                       "('.' for this one)")
  path = pathlib.Path(workdir).expanduser().absolute()
  if str(path).startswith(("/proc/", "/sys/", "/dev/")) or str(path) in (
      "/proc", "/sys", "/dev"):
    raise WorkdirError(f"{flag}={workdir}: not a place for results")
  for parent in [path, *path.parents]:
    if parent.exists():
      if not parent.is_dir():
        raise WorkdirError(f"{flag}={workdir}: {parent} is not a folder")
      if not os.access(parent, os.W_OK | os.X_OK):
        raise WorkdirError(f"{flag}={workdir}: {parent} is not writable")
      break
  return path


class Workdir:
  """An opened, locked workdir; `path` is a pathlib.Path."""

  def __init__(self, path, lock_fd):
    self.path, self._lock_fd = path, lock_fd

  def fail(self, error) -> None:
    """Writes failure.json; metrics.jsonl becomes metrics.jsonl.failed."""
    results.mark_failed(self.path, error)

  def close(self) -> None:
    if self._lock_fd is not None:
      os.close(self._lock_fd)  # releases the flock
      self._lock_fd = None


def _lock(path) -> int:
  """Takes workdir/.lock exclusively; WorkdirError naming the holder."""
  lock_path = path / LOCK
  fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EACCES):
      os.close(fd)
      raise
    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
    os.close(fd)
    raise WorkdirError(f"{path} is in use by process {holder} (it holds "
                       f"{lock_path}); wait for it to end or choose another "
                       "--workdir") from None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  return fd


def _read_record(path):
  """A workdir's record of its run (config.json, inputs.json); None if the
  run has none yet. One that exists but cannot be read is refused: read as
  absent, it would let another config or changed data resume the run."""
  if not os.path.lexists(path):
    return None
  try:
    return results.read_json_object(path)
  except results.JSONFileError as e:
    raise WorkdirError(
        f"{path}: {e}, so this unfinished run cannot be checked against the "
        "config and the data; pass --overwrite to start afresh, or choose "
        "another --workdir.") from None


def check_resumable(path, config_dict, inputs, overwrite) -> None:
  """Raises WorkdirError unless `path` may be (re)used for this config."""
  if overwrite:
    return
  if (path / results.RESULTS).exists():
    raise WorkdirError(
        f"{path} holds a finished run ({results.RESULTS} exists); pass "
        "--overwrite to replace it or choose another --workdir.")
  old = _read_record(path / results.CONFIG)
  if old is not None and old != json.loads(json.dumps(config_dict)):
    raise WorkdirError(
        f"{path} holds an unfinished run of another config ("
        f"{config_changes(old, config_dict)}); pass --overwrite to replace "
        "it, or rerun with its config to resume it.")
  stored = _read_record(path / INPUTS)
  if stored is not None and stored != inputs:
    changed = sorted(set(stored) ^ set(inputs) | {
        p for p in set(stored) & set(inputs) if stored[p] != inputs[p]})
    raise WorkdirError(
        f"{path}: the input files changed since this run started "
        f"({', '.join(changed)}); pass --overwrite to start afresh on the "
        "new data.")


def _remove_outputs(path, outputs) -> None:
  for pattern in (*COMMON_OUTPUTS, *outputs):
    for target in path.glob(pattern):
      if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
      else:
        target.unlink()


def _reopen_failed(path) -> None:
  """A failed run resumes: failure.json goes, its metrics come back."""
  (path / results.FAILURE).unlink(missing_ok=True)
  failed = path / (results.METRICS + ".failed")
  if failed.exists():
    os.replace(failed, path / results.METRICS)


def open_workdir(workdir, config_dict, overwrite=False, input_paths=(),
                 outputs=()) -> Workdir:
  """Opens (and locks) `workdir` for a run of `config_dict`.

  Args:
    workdir: the --workdir flag's value.
    config_dict: the resolved config, stored as config.json.
    overwrite: replace what the workdir holds (--overwrite).
    input_paths: the files the run reads; their sha256 go to inputs.json.
    outputs: globs of experiment-specific outputs --overwrite removes too.

  Returns:
    the locked Workdir; close() it (or let the process end) to unlock.
  """
  path = check_path(workdir)
  inputs = fingerprint(input_paths)
  lock_fd = None
  # Every process reads the same storage: all refuse alike, none waits.
  check_resumable(path, config_dict, inputs, overwrite)
  if distributed.is_writer():
    try:
      path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise WorkdirError(f"--workdir={workdir}: cannot create it ({e.strerror})"
                         ) from None
    lock_fd = _lock(path)
    with contextlib.ExitStack() as undo:
      undo.callback(os.close, lock_fd)
      check_resumable(path, config_dict, inputs, overwrite)  # now locked
      if overwrite:
        _remove_outputs(path, outputs)
      _reopen_failed(path)
      atomic.write_json(path / results.CONFIG, config_dict)
      atomic.write_json(path / INPUTS, inputs)
      undo.pop_all()
  distributed.sync(f"opened {path}")
  return Workdir(path, lock_fd)


@contextlib.contextmanager
def use(workdir, config_dict, overwrite=False, input_paths=(), outputs=()):
  """open_workdir as a context: yields the path; an exception escaping the
  block writes failure.json; the lock is released at the end."""
  opened = open_workdir(workdir, config_dict, overwrite, input_paths, outputs)
  try:
    yield opened.path
  except Exception as e:
    opened.fail(e)
    raise
  finally:
    opened.close()
