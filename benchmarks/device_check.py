"""One prepared device check: the suite's speed and quality on one accelerator.

PYTHONPATH=. python benchmarks/device_check.py --data_dir=DIR_WITH_ML-1M --out=DIR
PYTHONPATH=. python benchmarks/device_check.py --quick --out=DIR  # CPU, tiny data
launch/device_check.sh OUT_DIR  # on a lent GPU machine: docs/gpu.md

Writes DIR/device_check.md, DIR/device_check.json (both rewritten after every
section, so a killed run keeps what it measured: device_report.py) and
DIR/device_check.log (the sections' own output). Sections, cheap and
important first, each with its own budget under one global deadline
(--deadline_s, default 8 min):
  environment  versions, backend, device and its memory, source version
               (device_env.py);
  mf           MF `batched` examples/s at d = 64 and 192 and the floor;
  learned      GMF, MLP, NeuMF examples/s at batch 65,536, 2,048, 256;
  retrieval    exact top-10 over 10^6 items at d = 64 against NCF's MLP
               scoring every item (these three: device_speed.py);
  e2e          MF on ML-1M, App. A.2, d = 192, 8 seeds, 256 epochs (ncf.run);
  drift        two identical 16-epoch runs: their largest difference;
  synthetic    one §4 cell (d 128, M 128,000, x1, 5 seeds, 1 epoch) and the
               full grid's estimated time;
  drift_deterministic  drift under --xla_gpu_deterministic_ops=true (these
               four: device_runs.py).
Sections run one at a time in a worker process (device_runner.py), replaced
when a section times out or crashes or needs other XLA_FLAGS, so a failure
is recorded with its error and the rest still run. This process never
starts JAX: the worker has the accelerator to itself. The §4 cell's data
(numpy, minutes of one CPU core) is made by a process of its own from the
start, while the accelerator runs the other sections.
"""

import argparse
import pathlib
import shutil
import sys
import tempfile
import time

# benchmarks/ is on sys.path: this file runs as a script.
import device_env
import device_report
import device_runner
import device_runs
import device_speed

# Quick mode only: shorter CPU compiles (its speeds mean nothing anyway).
# Without its MLIR fusion emitters, XLA:CPU compiles these programs with
# about a third less CPU time (all sections: 28 s -> 19 s in one process).
QUICK_XLA = ("--xla_backend_optimization_level=0 "
             "--xla_cpu_use_fusion_emitters=false")


def _data(args, scratch) -> dict:
  """data_dir and data_name: ML-1M's NCF files, or with --quick tiny
  generated data written as NCF files like them."""
  if args.quick:
    from dot_vs_learned import data as data_lib  # pylint: disable=g-import-not-at-top
    from dot_vs_learned import datasets  # pylint: disable=g-import-not-at-top
    data = dict(data_dir=str(scratch / "data"), data_name="quick")
    data_lib.write_ncf(datasets.generate_default(300, 200), data["data_dir"],
                       "quick")
    return data
  for suffix in ("train.rating", "test.rating", "test.negative"):
    path = pathlib.Path(args.data_dir) / f"ml-1m.{suffix}"
    if not path.is_file():
      raise SystemExit(f"{__file__}: --data_dir={args.data_dir!r} has no "
                       f"{path.name} (the NCF ML-1M files are needed)")
  return dict(data_dir=args.data_dir, data_name="ml-1m")


def plan(args, scratch):
  """The sections as (name, function, budget s, extra XLA_FLAGS, spec)."""
  q = args.quick
  data = _data(args, scratch)
  e2e_spec = dict(data, dim=8 if q else 192, seeds=2 if q else 8,
                  epochs=2 if q else 256)
  drift_spec = dict(e2e_spec, epochs=2 if q else 16)
  tiny_grid = dict(pairs_per_user=10, num_fresh=200, dims=(8,),
                   nums_users=(400, 800), multipliers=(1, 2))
  tasks = [
      ("environment", device_env.environment, 60, "", {}),
      ("mf", device_speed.mf, 90, "", dict(
          data, dims=(8,) if q else (64, 192),
          large_batches=() if q else (16_384,), min_seconds=0 if q else 1.0)),
      ("learned", device_speed.learned, 120, "", dict(
          data, dim=16 if q else 64, num_negatives=4,  # NCF's m
          models=("neumf",) if q else ("neumf", "mlp", "gmf"),
          batches=(4096,) if q else (65_536, 2048, 256),
          min_seconds=0 if q else 1.0)),
      ("retrieval", device_speed.retrieval, 60, "", dict(
          n=5000 if q else 10**6, d=16 if q else 64,
          chunks=(1000,) if q else (65_536, 10**6), queries=5 if q else 100,
          max_seconds=0.2 if q else 5.0)),
      ("e2e", device_runs.e2e, 330, "", e2e_spec),
      ("drift", device_runs.drift, 90, "", drift_spec),
      ("synthetic", device_runs.synthetic, 120, "", dict(
          dim=8 if q else 128, num_users=400 if q else 128_000, multiplier=1,
          overrides=dict(num_seeds=2 if q else 5, epochs=1,
                         **(tiny_grid if q else {})),
          short=dict(pairs_per_user=10 if q else 20),
          short_num_users=400 if q else 4000,
          data_folder=str(scratch / "synthetic_data"))),
      # Last: its cost is unknown, and it needs a worker of its own.
      ("drift_deterministic", device_runs.drift, 90,
       device_runs.DETERMINISTIC, drift_spec),
  ]
  if q:
    tasks = [(name, fn, budget, " ".join(f for f in (QUICK_XLA, flags) if f),
              spec) for name, fn, budget, flags, spec in tasks]
  wanted = args.sections.split(",") if args.sections else [t[0] for t in tasks]
  unknown = set(wanted) - {t[0] for t in tasks}
  if unknown:
    raise SystemExit(f"{__file__}: --sections: unknown {sorted(unknown)}")
  return [(name, fn, budget, flags, dict(spec, scratch=str(scratch)))
          for name, fn, budget, flags, spec in tasks if name in wanted]


def _copy_small_outputs(scratch, out) -> None:
  """The sections' workdirs' JSON and Markdown files (not checkpoints or
  parameters, which stay behind) into OUT/work/."""
  for path in scratch.rglob("*"):
    if (path.suffix in (".json", ".jsonl", ".md") and path.is_file() and
        path.stat().st_size < 1 << 20 and "checkpoints" not in path.parts):
      target = out / "work" / path.relative_to(scratch)
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.copyfile(path, target)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True, help="folder of the report")
  parser.add_argument("--data_dir", default="",
                      help="folder with ml-1m.{train.rating,test.rating,"
                      "test.negative}; ignored with --quick")
  parser.add_argument("--quick", action="store_true",
                      help="tiny generated data: checks every code path")
  parser.add_argument("--deadline_s", type=float, default=480.0,
                      help="global deadline in seconds (default 8 min)")
  parser.add_argument("--sections", default="",
                      help="comma-separated subset, e.g. e2e,drift")
  args = parser.parse_args(argv)
  started = time.time()
  out = pathlib.Path(args.out)
  try:
    out.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    parser.error(f"--out={out}: cannot make the folder ({e.strerror})")
  scratch = pathlib.Path(tempfile.mkdtemp(prefix="device_check_"))
  record = {"mode": "quick" if args.quick else "full", "argv": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "deadline_s": args.deadline_s, "seconds": 0.0, "sections": {}}
  generator = None
  try:
    tasks = plan(args, scratch)
    cell = [spec for name, _, _, _, spec in tasks if name == "synthetic"]
    if cell:  # the §4 cell's data, on the CPU, while the rest runs
      pathlib.Path(cell[0]["data_folder"]).mkdir()
      generator = device_runner.spawn(
          device_runs.generate_synthetic, (cell[0], cell[0]["data_folder"]),
          JAX_PLATFORMS="cpu")

    def on_record(name, section):
      record["sections"][name] = section
      record["seconds"] = time.time() - started
      device_report.write_report(out, record)
      print(f"[{record['seconds']:6.1f} s] {name}: {section['status']}"
            + (f" ({section['error'].splitlines()[0]})"
               if section.get("error") else ""), flush=True)

    device_runner.run_sections(tasks, started + args.deadline_s,
                               out / "device_check.log", on_record)
  finally:
    if generator is not None and generator.is_alive():
      generator.kill()
      generator.join(10)
    _copy_small_outputs(scratch, out)
    shutil.rmtree(scratch, ignore_errors=True)
  record["seconds"] = time.time() - started
  device_report.write_report(out, record)
  print((out / "device_check.md").read_text())


if __name__ == "__main__":
  main()
