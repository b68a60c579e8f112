"""Serving cost (paper §5): exact dot, an ANN index and MLP scoring, measured.

python -m dot_vs_learned.main --config=configs/retrieval.py --workdir=/tmp/dvl_retrieval
  the full sweep: n in {1e4, 1e5, 1e6} x d in {32, 64, 128, 192}.
--config=configs/retrieval.py:small  n in {1e4, 1e5} x d in {32, 64}: minutes.
One cell: --config.retrieval.nums_items='(1000000,)' --config.retrieval.dims='(64,)'
Trained embeddings: --config.retrieval.embeddings_from=WORKDIR_OF_AN_MF_RUN
The ANN index needs faiss: pip install -e ".[ann]".
"""

from dot_vs_learned import serving


def get_config(size="full"):
  config = serving.default_config()
  if size == "small":
    config.retrieval.nums_items = (10_000, 100_000)
    config.retrieval.dims = (32, 64)
  elif size != "full":
    raise ValueError(f"configs/retrieval.py:{size}: choose 'full' or 'small'")
  return config
