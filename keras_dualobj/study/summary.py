"""The study's printed tables: best α per R against both ends and the paper's rule, and
prefix-LM against AR on the same tokens."""

from keras_dualobj.study.paper import paper_ar_fraction
from keras_dualobj.study.results import CellResult  # noqa: F401 (docstring example)
from keras_dualobj.study.results import best_ar_fractions
from keras_dualobj.study.results import format_fraction


def summary_table(results, estimator=None):
    """A plain-text table: best α per R for AR loss and MD ELBO vs both ends and the paper.

    Args:
        results: `CellResult`s of one study.
        estimator: optional line saying how the held-out losses were measured
            (printed under the heading).

    Example:
    >>> cells = [CellResult(a, 4, 100, 400, 10, 0, l, l, 1.0, l + 1, l + 1, l, 1.0)
    ...          for a, l in [(0.0, 3.0), (0.5, 2.0), (1.0, 2.5)]]
    >>> print(summary_table(cells).splitlines()[2])
      R |   best α (AR loss)  vs α=0  vs α=1 |   best α (MD ELBO)  vs α=0  vs α=1 | paper α
    """
    lines = [
        "Held-out losses (nats/token); 'vs' columns: best minus that end (negative = better).",
        *([estimator] if estimator else []),
        "",
        "  R |   best α (AR loss)  vs α=0  vs α=1 |   best α (MD ELBO)  vs α=0  vs α=1 | paper α",
    ]
    by_ar = best_ar_fractions(results, "final_ar_loss")
    by_md = best_ar_fractions(results, "final_md_elbo")
    for repetitions in sorted(by_ar):
        row = [f"{repetitions:>3}"]
        for summary, metric in ((by_ar, "final_ar_loss"), (by_md, "final_md_elbo")):
            cells = summary[repetitions]
            best = cells["best"]
            if best is None:
                row.append(f"{'n/a':>19} {'':>7} {'':>7}")
                continue
            value = getattr(best, metric)
            deltas = []
            for end in ("md_only", "ar_only"):
                other = cells[end]
                deltas.append(
                    f"{value - getattr(other, metric):+7.3f}" if other is not None else f"{'n/a':>7}"
                )
            row.append(f"{format_fraction(best.ar_fraction):>9} = {value:7.3f} {deltas[0]} {deltas[1]}")
        row.append(f"{format_fraction(paper_ar_fraction(repetitions)):>7}")
        lines.append(" | ".join(row))
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
