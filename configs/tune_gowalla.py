"""Tuning on Gowalla's tuning split, then the final runs on the real split.

python -m dot_vs_learned.splits --holdout_of=DIR_WITH_GOWALLA --name=gowalla --format=lists --out_dir=TUNE_DIR
python -m dot_vs_learned.main --config=configs/tune_gowalla.py:MODEL \
  --config.data.dir=TUNE_DIR --config.final.data.dir=DIR_WITH_GOWALLA --workdir=DIR

The tuning split holds out 20% of each user's training items (test.txt is
never used); every point is judged by full-ranking Recall@20 on it (ties:
NDCG@20), and the selection (hyperparameters and epoch) is trained on all
of train.txt and evaluated on test.txt at d = 64, with 3 seeds. MODEL:
  mf    App. A.1's SGD: lr x lambda at m = 8, 128 epochs, every 16;
  mf_negatives  the same SGD at mf's lr (0.03), more negatives: m 16 and 32
        x lambda 0.005 / 0.01 / 0.02, 64 epochs, every 8 (each epoch has
        1 + m examples per training pair);
  mf_more_negatives  the same at m = 64, lambda 0.00125 / 0.0025 / 0.005,
        96 epochs, every 8 (mf_negatives chose its largest m, smallest
        lambda and last epoch: m 32, lambda 0.005, epoch 64); its
        selection's final runs at d = 64 and, beyond the tuned d, 128;
  ials  lambda x alpha0 (Gowalla's 41k items call for a far smaller alpha0
        than ML-1M's 0.3), CG solver, 12 epochs, every 2;
  ease  the lambda grid (no d, no seeds): 41k items are too many for one
        eigendecomposition, so one in-place fit per lambda, each lambda's
        metrics kept in ease_grid.jsonl (a killed grid resumes).
"""

from dot_vs_learned import tuning_config


def get_config(model="mf"):
  config = tuning_config.default_config()
  config.data.update(name="gowalla.holdout", format="lists")
  config.final.data.update(name="gowalla", format="lists")
  config.final.update(dims=(64,), num_seeds=3)
  config.eval.update(k=20, full_ranking_ks=(10, 20))
  config.sweep.update(models=(model.split("_")[0],), dims=(64,),
                      num_negatives=(8,))
  if model == "mf":
    # A first grid (lr 0.01 / 0.03 x lambda 0.001 / 0.003 / 0.01, 64
    # epochs) chose its largest lr and lambda at its last epoch: this one
    # reaches further on all three.
    config.sweep.update(learning_rates=(0.03, 0.1), regs=(0.01, 0.02, 0.04))
    config.train.epochs = 128
    config.eval.every = 16
  elif model == "mf_negatives":
    config.sweep.update(learning_rates=(0.03,), regs=(0.005, 0.01, 0.02),
                        num_negatives=(16, 32))
    config.train.epochs = 64
    config.eval.every = 8
  elif model == "mf_more_negatives":
    config.sweep.update(learning_rates=(0.03,), regs=(0.00125, 0.0025, 0.005),
                        num_negatives=(64,))
    config.train.epochs = 96
    config.eval.every = 8
    config.final.dims = (64, 128)
  elif model == "ials":
    # A first grid (lambda 0.003..0.03) chose its smallest lambda at
    # epoch 4: this one reaches lower and is evaluated every 2 epochs.
    config.sweep.ials.update(regs=(0.0001, 0.0003, 0.001, 0.003),
                             alpha0s=(0.003, 0.01, 0.03))
    config.ials.solver = "cg"
    config.train.epochs = 12
    config.eval.every = 2
  elif model == "ease":
    # Each lambda is a fit of the 40,981-item system; BARS's EASE^R row
    # used 80 on all of train.txt.
    config.sweep.ease.regs = (25.0, 50.0, 100.0, 200.0)
  else:
    raise ValueError(f"configs/tune_gowalla.py:{model}: 'mf', "
                     "'mf_negatives', 'mf_more_negatives', 'ials' or 'ease'")
  return config
