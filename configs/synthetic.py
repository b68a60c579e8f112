"""Learning a dot product with an MLP (paper §4, Figure 3).

python -m dot_vs_learned.main --config=configs/synthetic.py --workdir=/tmp/dvl_synthetic
  the full grid: d in {16, 32, 64, 128} x M in {4k .. 128k} x width 1, 2, 4
  x 5 seeds, 32 epochs (for accelerators: days on a CPU).
--config=configs/synthetic.py:reduced  d in {16, 64} x M in {4k, 8k, 16k},
  width 1, 5 seeds, 32 epochs: the README's example, under 30 minutes on a
  2-core CPU. d = 16 and 64 are far enough apart to show the error rising
  with d (the paper's trend), which d = 16 and 32 barely do at these M.
An interrupted grid resumes where it stopped when rerun with the same command.
"""

from dot_vs_learned import synthetic


def get_config(size="full"):
  config = synthetic.default_config()
  if size == "reduced":
    config.synthetic.update(dims=(16, 64), nums_users=(4000, 8000, 16000),
                            multipliers=(1,))
  elif size != "full":
    raise ValueError(f"configs/synthetic.py:{size}: 'full' or 'reduced'")
  return config
