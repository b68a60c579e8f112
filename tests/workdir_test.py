"""Tests of the one workdir rule (workdir.py): lock, resume, refuse, overwrite."""

import json
import os

import pytest

from dot_vs_learned import results
from dot_vs_learned import workdir

CONFIG = {"train": {"epochs": 4, "learning_rate": 0.01}, "model": {"dim": 8}}


def _changed(**train):
  return {"train": dict(CONFIG["train"], **train), "model": CONFIG["model"]}


def test_a_second_opener_fails_at_once_naming_the_holder(tmp_path):
  first = workdir.open_workdir(tmp_path / "w", CONFIG)
  with pytest.raises(workdir.WorkdirError,
                     match=f"in use by process {os.getpid()}"):
    workdir.open_workdir(tmp_path / "w", CONFIG)
  first.close()
  workdir.open_workdir(tmp_path / "w", CONFIG).close()  # free again


def test_another_config_is_refused_with_what_changed(tmp_path):
  workdir.open_workdir(tmp_path, CONFIG).close()
  with pytest.raises(workdir.WorkdirError, match=(
      r"another config \(train\.epochs: 4 -> 8; train\.learning_rate: 0\.01 "
      r"-> 0\.02\); pass --overwrite")):
    workdir.open_workdir(tmp_path, _changed(epochs=8, learning_rate=0.02))
  assert json.loads((tmp_path / results.CONFIG).read_text()) == CONFIG


def test_changed_input_files_are_refused_and_overwrite_starts_afresh(
    tmp_path):
  data = tmp_path / "train.rating"
  data.write_text("0\t1\t1\t0\n")
  run = tmp_path / "run"
  workdir.open_workdir(run, CONFIG, input_paths=[data]).close()
  results.append_metrics(run, {"epoch": 1})
  (run / results.CHECKPOINTS / "train").mkdir(parents=True)
  workdir.open_workdir(run, CONFIG, input_paths=[data]).close()  # resumes
  assert (run / results.METRICS).exists()
  data.write_text("0\t2\t1\t0\n")
  with pytest.raises(workdir.WorkdirError,
                     match=f"input files changed.*{data.name}"):
    workdir.open_workdir(run, CONFIG, input_paths=[data])
  (run / "notes.txt").write_text("mine")
  workdir.open_workdir(run, CONFIG, True, input_paths=[data]).close()
  assert not (run / results.METRICS).exists()
  assert not (run / results.CHECKPOINTS).exists()
  assert (run / "notes.txt").read_text() == "mine"  # not an output
  stored = json.loads((run / workdir.INPUTS).read_text())
  assert stored == {str(data.resolve()): workdir.sha256(data)}


@pytest.mark.parametrize("record", [results.CONFIG, workdir.INPUTS])
def test_an_unreadable_record_is_refused_not_read_as_absent(tmp_path, record):
  workdir.open_workdir(tmp_path, CONFIG).close()
  (tmp_path / record).write_text("{corrupt")
  with pytest.raises(workdir.WorkdirError, match=(
      rf"{record}: unreadable \(JSONDecodeError: .*line 1.*pass --overwrite")):
    workdir.open_workdir(tmp_path, CONFIG)
  assert (tmp_path / record).read_text() == "{corrupt"
  workdir.open_workdir(tmp_path, CONFIG, overwrite=True).close()
  assert json.loads((tmp_path / results.CONFIG).read_text()) == CONFIG


@pytest.mark.parametrize("content, message", [
    (None, r"^unreadable \(FileNotFoundError: \[Errno 2\] No such file"),
    (b"{corrupt", r"^unreadable \(JSONDecodeError: Expecting property name "
     r"enclosed in double quotes: line 1 column 2 \(char 1\)\)$"),
    (b"\xff{}", r"^unreadable \(UnicodeDecodeError: 'utf-8' codec can't "),
    (b"[1, 2]", r"^a JSON list, not an object$"),
    (b"0.5", r"^a JSON float, not an object$"),
])
def test_read_json_object_says_why_a_file_is_refused(tmp_path, content,
                                                     message):
  path = tmp_path / "record.json"
  if content is not None:
    path.write_bytes(content)
  with pytest.raises(results.JSONFileError, match=message):
    results.read_json_object(path)


def test_read_json_object_reads_an_object_and_cuts_a_long_reason(tmp_path):
  path = tmp_path / "record.json"
  path.write_text('{"a": [1, 2], "b": {"c": null}}')
  assert results.read_json_object(path) == {"a": [1, 2], "b": {"c": None}}
  missing = tmp_path / ("x" * 200) / "record.json"  # OSError names the path
  with pytest.raises(results.JSONFileError) as error:
    results.read_json_object(missing)
  assert str(error.value) == (
      "unreadable (FileNotFoundError: " +
      f"[Errno 2] No such file or directory: '{missing}'"[:200] + "...)")


def test_read_results_of_a_finished_unfinished_or_spoilt_run(tmp_path):
  assert results.read_results(tmp_path) is None
  results.write_json(tmp_path / results.RESULTS, {"final": {"hr@10": 0.5}})
  assert results.read_results(tmp_path) == {"final": {"hr@10": 0.5}}
  (tmp_path / results.RESULTS).write_text("[]")
  with pytest.raises(results.WorkdirError, match=(
      rf"^{tmp_path / results.RESULTS}: a JSON list, not an object; remove "
      rf"{tmp_path} to run it again, or pass --overwrite to run everything "
      "again$")):
    results.read_results(tmp_path)


def test_a_finished_run_is_kept_unless_overwritten(tmp_path):
  workdir.open_workdir(tmp_path, CONFIG).close()
  results.write_json(tmp_path / results.RESULTS, {"final": 1})
  with pytest.raises(workdir.WorkdirError, match="finished run"):
    workdir.open_workdir(tmp_path, CONFIG)
  workdir.open_workdir(tmp_path, CONFIG, overwrite=True).close()
  assert not (tmp_path / results.RESULTS).exists()


def test_a_failed_run_resumes_with_its_metrics(tmp_path):
  with pytest.raises(RuntimeError):
    with workdir.use(tmp_path, CONFIG):
      results.append_metrics(tmp_path, {"epoch": 1})
      raise RuntimeError("disk full")
  failure = json.loads((tmp_path / results.FAILURE).read_text())
  assert failure == {"error": "RuntimeError", "message": "disk full"}
  assert not (tmp_path / results.METRICS).exists()
  with workdir.use(tmp_path, CONFIG) as path:
    assert not (path / results.FAILURE).exists()
    assert results.read_metrics(path) == [{"epoch": 1}]


def test_unusable_paths_are_refused_before_anything_is_made(tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("x")
  for path, message in ((afile, "is not a folder"),
                        (afile / "under", "is not a folder"),
                        ("/proc/self/w", "not a place for results"),
                        ("", "--workdir=: an empty path"),
                        (" ", "an empty path")):
    with pytest.raises(workdir.WorkdirError, match=message):
      workdir.open_workdir(path, CONFIG)
  assert afile.read_text() == "x"
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    with pytest.raises(workdir.WorkdirError, match="is not writable"):
      workdir.open_workdir(locked / "w", CONFIG)


def test_config_changes_lists_the_first_fields_and_counts_the_rest():
  old = {"a": {str(i): i for i in range(8)}}
  new = {"a": {str(i): i + 1 for i in range(8)}, "b": 1}
  text = workdir.config_changes(old, new, limit=2)
  assert text == "a.0: 0 -> 1; a.1: 1 -> 2 and 7 more"
