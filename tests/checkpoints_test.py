"""Tests of checkpoints.remove: it deletes exactly the folders it names."""

from dot_vs_learned import checkpoints
from dot_vs_learned import results


def test_remove_deletes_only_the_matching_folders(tmp_path):
  root = tmp_path / results.CHECKPOINTS
  names = ("synthetic_d16_M4000_x1", "synthetic_d16_M4000_x16",
           "tune_mf_d64_m8_points1-4", "tune_mf_d64_m8_points5-8",
           "tune_mf_d64_m80_points1-4")
  for name in names:
    (root / name / "0").mkdir(parents=True)
  checkpoints.remove(tmp_path, "synthetic_d16_M4000_x1")
  checkpoints.remove(tmp_path, "tune_mf_d64_m8_points*")
  assert sorted(p.name for p in root.iterdir()) == [
      "synthetic_d16_M4000_x16", "tune_mf_d64_m80_points1-4"]
