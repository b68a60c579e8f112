"""Is a dot product enough on my data? Every model tuned the same way.

python -m dot_vs_learned.main --config=configs/compare.py \
  --config.data.dir=DIR --config.data.name=NAME --workdir=W

DIR holds NAME.train.rating, NAME.test.rating and NAME.test.negative (NCF
files; the splits CLI makes them from a raw log), or, with
--config.data.format=lists, train.txt and test.txt. The command builds the
tuning split, tunes MF, iALS, EASE^R, GMF, MLP and NeuMF on it within
compare.budget epochs x points, trains each selection on the real split with
compare.num_seeds seeds and writes W/comparison.md, .csv and .png
(compare.py). --help --config=configs/compare.py lists every field.
"""

from dot_vs_learned import compare


def get_config(arg=None):
  if arg is not None:
    raise ValueError(f"configs/compare.py takes no ':' argument "
                     f"(got {arg!r})")
  return compare.default_config()
