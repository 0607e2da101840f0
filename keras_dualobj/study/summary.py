"""The study's printed tables: best α per R on each face against both ends and the
paper's rule, and prefix-LM against AR on the same tokens.

The MD face is judged as the paper judges it, by the held-out PLL (`final_md_pll`), with
the ELBO (`final_md_elbo`) in the next column. Where a cell has no PLL (results written
before it and no saved model to score it from, `keras_dualobj.study.cell_pll`), its R
shows `n/a` in the PLL column and a line under the table says that the MD face is judged
by the ELBO there.
"""

from keras_dualobj.study.paper import paper_ar_fraction
from keras_dualobj.study.results import CellResult  # noqa: F401 (docstring example)
from keras_dualobj.study.results import best_ar_fractions
from keras_dualobj.study.results import format_fraction
from keras_dualobj.study.results import pll_not_measured

# The columns of `summary_table`, the paper's metrics first.
FACES = (("final_ar_loss", "AR loss"), ("final_md_pll", "MD PLL"), ("final_md_elbo", "MD ELBO"))


def _face_cells(cells, metric):
    """`best α = value, vs α=0, vs α=1` of one face at one R (`n/a` without a best)."""
    best = cells["best"]
    if best is None:
        return f"{'n/a':>19} {'':>7} {'':>7}"
    value = getattr(best, metric)
    deltas = []
    for end in ("md_only", "ar_only"):
        other = cells[end]
        delta = None if other is None else getattr(other, metric)
        deltas.append(f"{'n/a':>7}" if delta is None else f"{value - delta:+7.3f}")
    return f"{format_fraction(best.ar_fraction):>9} = {value:7.3f} {deltas[0]} {deltas[1]}"


def summary_table(results, estimator=None):
    """A plain-text table: best α per R by AR loss, MD PLL and MD ELBO vs both ends and the paper.

    The MD face's verdict is the PLL column (the paper's metric); the ELBO is beside it.
    An R where a cell has no PLL shows `n/a` there, and a line under the table names
    those R and says that the MD face is judged by the ELBO there (run
    `keras_dualobj.study.cell_pll.fill_held_out_pll` first to score what can be).

    Args:
        results: `CellResult`s of one study.
        estimator: optional line saying how the held-out losses were measured
            (printed under the heading).

    Example (the PLL and the ELBO disagree on the MD face: α = 1/2 by the PLL, 0 by the ELBO):
    >>> cells = [CellResult(a, 4, 100, 400, 10, 0, l, l, 1.0, e, e, l, 1.0, final_md_pll=p)
    ...          for a, l, p, e in [(0.0, 3.0, 2.0, 2.4), (0.5, 2.0, 1.9, 2.5), (1.0, 2.5, 2.6, 4.0)]]
    >>> print("\\n".join(summary_table(cells).splitlines()[2:]))
      R |   best α (AR loss)  vs α=0  vs α=1 |    best α (MD PLL)  vs α=0  vs α=1 |   best α (MD ELBO)  vs α=0  vs α=1 | paper α
      4 |       1/2 =   2.000  -1.000  -0.500 |       1/2 =   1.900  -0.100  -0.700 |         0 =   2.400  +0.000  -1.600 |   63/64
    >>> import dataclasses
    >>> old = [dataclasses.replace(c, final_md_pll=None) for c in cells]
    >>> print(summary_table(old).splitlines()[-1])
    MD PLL n/a at R = 4: MD PLL not measured in 3 of 3 cells (results written before it, and no model.keras to score it from); the MD face is judged by the MD ELBO there.
    """
    lines = [
        "Held-out losses (nats/token); 'vs' columns: best minus that end (negative = better). "
        "MD face: the PLL (the paper's metric), the ELBO beside it.",
        *([estimator] if estimator else []),
        "",
        "  R | " + " | ".join(f"{'best α (' + name + ')':>18}  vs α=0  vs α=1" for _, name in FACES)
        + " | paper α",
    ]
    by_metric = {metric: best_ar_fractions(results, metric) for metric, _ in FACES}
    for repetitions in sorted(by_metric["final_ar_loss"]):
        row = [f"{repetitions:>3}"]
        row += [_face_cells(by_metric[metric][repetitions], metric) for metric, _ in FACES]
        row.append(f"{format_fraction(paper_ar_fraction(repetitions)):>7}")
        lines.append(" | ".join(row))
    unmeasured = {r: cells["not_measured"] for r, cells in by_metric["final_md_pll"].items()
                  if cells["not_measured"]}
    if unmeasured:
        at = ", ".join(str(r) for r in unmeasured)
        missing = sum(len(cells) for cells in unmeasured.values())
        total = sum(1 for r in results if r.repetitions in unmeasured)
        lines.append(f"MD PLL n/a at R = {at}: {pll_not_measured(missing, total)}; the MD face is "
                     "judged by the MD ELBO there.")
    return "\n".join(lines)


def prefix_comparison_table(results):
    """Prefix-LM minus AR loss per (R, α), both on each held-out row's second half.

    The prefix-LM loss cannot score a row's first half (it attends both ways over it),
    so it is set against the AR loss on the same tokens (`final_ar_suffix_loss`), never
    against the whole-row AR loss of `summary_table`. Cells that did not measure it
    (older results) show `n/a`; `""` when none did.

    Args:
        results: `CellResult`s, one per (α, R) (e.g. `mean_results`).

    Example:
    >>> cells = [CellResult(a, 4, 100, 400, 10, 0, 3.0, 3.0, 1.0, 3.0, 3.0, p, 1.0,
    ...                     final_ar_suffix_loss=2.5) for a, p in [(0.0, 2.4), (1.0, 2.7)]]
    >>> print(prefix_comparison_table(cells).splitlines()[-1])
      4 | -0.100 +0.200
    """
    measured = [r for r in results if r.final_ar_suffix_loss is not None]
    if not measured:
        return ""
    fractions = sorted({r.ar_fraction for r in results})
    lines = [
        "Prefix-LM vs AR on the same tokens, the second half of each held-out row (prefix-LM:",
        "bidirectional over the first half; AR: causal): prefix-LM minus AR, nats/token",
        "(negative: the bidirectional prefix helps). Not comparable with the whole-row AR loss above.",
        "",
        "  R | " + " ".join(f"{format_fraction(a):>6}" for a in fractions),
    ]
    for repetitions in sorted({r.repetitions for r in results}):
        by_alpha = {r.ar_fraction: r for r in results if r.repetitions == repetitions}
        cells = []
        for alpha in fractions:
            cell = by_alpha.get(alpha)
            if cell is None or cell.final_ar_suffix_loss is None:
                cells.append(f"{'n/a':>6}")
            else:
                cells.append(f"{cell.final_prefix_loss - cell.final_ar_suffix_loss:+6.3f}")
        lines.append(f"{repetitions:>3} | " + " ".join(cells))
    return "\n".join(lines)
