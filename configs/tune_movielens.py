"""App. A.2 on MovieLens-1M: tune MF on the tuning split, then Figure 2's runs.

python -m dot_vs_learned.splits --holdout_of=DIR_WITH_ML-1M --name=ml-1m --out_dir=TUNE_DIR --pick=random
python -m dot_vs_learned.main --config=configs/tune_movielens.py \
  --config.data.dir=TUNE_DIR --config.final.data.dir=DIR_WITH_ML-1M --workdir=DIR

The coarse pass: lr in {0.001, 0.003, 0.01} x m in {4, 8, 16} x lambda in
{0, 0.001, 0.003, 0.01} at d = 64 and 128 epochs, evaluated every 16 epochs
on the tuning split; the selection (hyperparameters and epoch) is then
trained on the real split for d in {16, 32, 64, 96, 128, 192} with 8 seeds.
--config=configs/tune_movielens.py:quick  runs 32 epochs, final d = 64 only,
with 2 seeds.
--config=configs/tune_movielens.py:paper  is Figure 2's MF curve at the
paper's protocol: its final hyperparameters (lr 0.002, m 8, lambda 0.005,
256 epochs; App. A.2) as the only point, so the tuning split only reports
their tuning HR, then 8 seeds for each d. Hours on a CPU; a killed run
resumes where it stopped when the same command is run again.
"""

from dot_vs_learned import tuning_config


def get_config(size="coarse"):
  config = tuning_config.default_config()
  if size == "quick":
    config.train.epochs = 32
    config.eval.every = 8
    config.final.update(dims=(64,), num_seeds=2)
  elif size == "paper":
    config.sweep.update(learning_rates=(0.002,), regs=(0.005,),
                        num_negatives=(8,))
    config.train.epochs = 256
    config.eval.every = 256  # one evaluation: the selection is 256 epochs
    config.final.every = 16  # the final runs' curves and checkpoints
  elif size != "coarse":
    raise ValueError(f"configs/tune_movielens.py:{size}: 'coarse', 'quick' "
                     "or 'paper'")
  return config
