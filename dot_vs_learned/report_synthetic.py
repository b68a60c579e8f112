"""The §4 grid's report: its table and Figure 3 (synthetic.py writes them
into its workdir at the end of the grid)."""

from dot_vs_learned import plotting


def table(records) -> str:
  """The §4 grid (synthetic.py records) as a Markdown table."""
  lines = ["| d | M | multiplier | hidden | RMSE MLP test | RMSE MLP fresh | "
           "RMSE dot test | RMSE zero test | error test | error fresh | "
           "train s |", "|" + "---|" * 11]
  for r in records:
    head = f"| {r['d']} | {r['num_users']:,} | {r['multiplier']} |"
    if "error" in r:
      lines.append(f"{head} failed: {r['error']} |")
      continue
    cells = [f"{r[k]['mean']:.4f}" for k in ("mlp_test", "mlp_fresh",
                                             "dot_test", "zero_test")]
    cells += [f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}"
              for k in ("error_test", "error_fresh")]
    lines.append(f"{head} {r['hidden']} | " + " | ".join(cells) +
                 f" | {r['train_s']:.0f} |")
  return "\n".join(lines) + "\n"


def figure3(records, path) -> None:
  """Figure 3 from the §4 grid: error against M, a line per d, a panel per
  width (test dotted, fresh solid)."""
  plt = plotting.pyplot(path)
  if plt is None:
    return
  ok = [r for r in records if "error" not in r]
  if not ok:
    return
  multipliers = sorted({r["multiplier"] for r in ok})
  dims = sorted({r["d"] for r in ok})
  fig, axes = plt.subplots(1, len(multipliers), sharey=True, squeeze=False,
                           figsize=(4.5 * len(multipliers), 3.8))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for ax, mult in zip(axes[0], multipliers):
    for color, dim in zip(colors * 4, dims):
      rows = sorted((r["num_users"], r) for r in ok
                    if r["d"] == dim and r["multiplier"] == mult)
      xs = [m for m, _ in rows]
      for split, style in (("fresh", "-"), ("test", ":")):
        ys = [r[f"error_{split}"]["mean"] for _, r in rows]
        ax.plot(xs, ys, style, color=color, marker="o", markersize=3,
                label=f"d={dim}" if split == "fresh" else None)
    for level in (0.01, 0.001):
      ax.axhline(level, color="gray", lw=0.8, ls="--")
    ax.set(xscale="log", yscale="log", xlabel="users M (= items)",
           title=f"first layer {mult}x (h = {mult}d/2)")
    ax.grid(True, which="both", alpha=0.3)
  axes[0][0].set_ylabel("RMSE(MLP) - RMSE(dot)")
  axes[0][-1].legend(title="solid: fresh, dotted: test", fontsize=8)
  plotting.save(fig, path)
