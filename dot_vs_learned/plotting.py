"""Figures: matplotlib (the optional `plots` extra), written atomically."""

import pathlib

from absl import logging


def pyplot(path):
  """matplotlib.pyplot on the Agg backend; None (and a warning naming
  `path`, the figure that will be missing) without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    logging.warning("matplotlib missing: no %s (pip install "
                    "'dot_vs_learned[plots]')", path)
    return None
  return plt


def save(fig, path) -> None:
  """Saves `fig` as PNG through a temporary file and a rename; closes it."""
  path = pathlib.Path(path)
  tmp = path.with_name("." + path.name)
  fig.tight_layout()
  fig.savefig(tmp, dpi=120, format="png")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  plt.close(fig)
  tmp.replace(path)
