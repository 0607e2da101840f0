"""The study's figures (matplotlib, PNG): loss vs α, a heat map, and training curves."""

import math
from pathlib import Path

import numpy as np

from keras_dualobj.study.results import format_fraction


def _pyplot():
    import matplotlib

    # Headless machines and CI have no display.
    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def _metric_name(metric):
    """`"final_ar_loss"` -> `"AR loss"`, `"final_md_elbo"` -> `"MD ELBO"`."""
    return {"ar_loss": "AR loss", "md_elbo": "MD ELBO", "prefix_loss": "prefix-LM loss"}.get(
        metric.replace("final_", "").replace("best_", ""), metric
    )


def plot_loss_vs_alpha(results, path, metric="final_ar_loss", title=None):
    """One line per repetition level: held-out `metric` against α."""
    pyplot = _pyplot()
    fractions = sorted({r.ar_fraction for r in results})
    # α categorically, evenly spaced: 1/256 and 255/256 both stay visible.
    positions = np.arange(len(fractions))
    labels = [format_fraction(a) for a in fractions]
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    for repetitions in sorted({r.repetitions for r in results}):
        by_alpha = {r.ar_fraction: getattr(r, metric) for r in results if r.repetitions == repetitions}
        xs = [p for p, a in zip(positions, fractions) if a in by_alpha]
        ys = [by_alpha[a] for a in fractions if a in by_alpha]
        axes.plot(xs, ys, marker="o", label=f"R = {repetitions}")
    axes.set_xticks(positions, labels, rotation=45)
    axes.set_xlabel("α (share of AR rows)")
    axes.set_ylabel(f"held-out {_metric_name(metric)} (nats/token)")
    axes.set_title(title or f"Held-out {_metric_name(metric)} vs α")
    axes.grid(alpha=0.3)
    axes.legend(title="repetitions")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return Path(path)


def plot_heatmap(results, path, metric="final_ar_loss"):
    """Held-out `metric` over the (α, R) grid; the best α of each R is outlined."""
    pyplot = _pyplot()
    fractions = sorted({r.ar_fraction for r in results})
    repetitions = sorted({r.repetitions for r in results})
    grid = np.full((len(repetitions), len(fractions)), np.nan)
    for r in results:
        grid[repetitions.index(r.repetitions), fractions.index(r.ar_fraction)] = getattr(r, metric)
    figure, axes = pyplot.subplots(
        figsize=(max(5.5, 1.5 + 0.8 * len(fractions)), max(3.5, 1.5 + 0.6 * len(repetitions)))
    )
    image = axes.imshow(grid, cmap="viridis_r", aspect="auto")
    middle = np.nanmean(grid)
    for row in range(len(repetitions)):
        for column in range(len(fractions)):
            value = grid[row, column]
            if not math.isnan(value):
                # Dark text on the light (low-loss) end of viridis_r, light text elsewhere.
                color = "black" if value < middle else "white"
                axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8, color=color)
        if not np.isnan(grid[row]).all():
            best = int(np.nanargmin(grid[row]))
            axes.add_patch(
                pyplot.Rectangle((best - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=2)
            )
    axes.set_xticks(range(len(fractions)), [format_fraction(a) for a in fractions], rotation=45)
    axes.set_yticks(range(len(repetitions)), [str(r) for r in repetitions])
    axes.set_xlabel("α (share of AR rows)")
    axes.set_ylabel("repetitions R")
    axes.set_title(f"Held-out {_metric_name(metric)} (red: best α per R)")
    figure.colorbar(image, ax=axes, label="nats/token")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return Path(path)


def plot_training_curves(results, path, repetitions=None):
    """Held-out AR loss and MD ELBO over training for α = 0, α = 1 and the best α.

    Drawn at the highest repetition level (or `repetitions`), where AR overfitting shows
    as an AR loss that turns upward.
    """
    pyplot = _pyplot()
    if repetitions is None:
        repetitions = max(r.repetitions for r in results)
    cells = [r for r in results if r.repetitions == repetitions and r.curve]
    if not cells:
        raise ValueError(f"No cell with a training curve at R = {repetitions}.")
    best = min(cells, key=lambda c: c.final_ar_loss)
    chosen = {c.ar_fraction: c for c in cells if c.ar_fraction in (0.0, 1.0)}
    chosen[best.ar_fraction] = best
    figure, (ar_axes, md_axes) = pyplot.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for ar_fraction in sorted(chosen):
        cell = chosen[ar_fraction]
        epochs = [point["epoch"] for point in cell.curve]
        label = f"α = {format_fraction(ar_fraction)}" + (" (best)" if cell is best else "")
        ar_axes.plot(epochs, [p["ar_loss"] for p in cell.curve], marker=".", label=label)
        md_axes.plot(epochs, [p["md_elbo"] for p in cell.curve], marker=".", label=label)
    for axes, name in ((ar_axes, "AR loss"), (md_axes, "MD ELBO")):
        axes.set_xlabel("epoch (passes over the unique data)")
        axes.set_ylabel(f"held-out {name} (nats/token)")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(f"Training curves at R = {repetitions}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return Path(path)


def write_plots(results, study_dir):
    """All the study's figures into `study_dir`; returns their paths.

    `training_curves.png` needs the highest R to have both ends (α = 0 and 1) or at
    least one cell with a curve; it is skipped for a grid without curves.
    """
    study_dir = Path(study_dir)
    paths = [
        plot_loss_vs_alpha(results, study_dir / "loss_vs_alpha.png", "final_ar_loss"),
        plot_loss_vs_alpha(results, study_dir / "md_elbo_vs_alpha.png", "final_md_elbo"),
        plot_heatmap(results, study_dir / "heatmap_ar_loss.png", "final_ar_loss"),
    ]
    if any(r.curve for r in results):
        paths.append(plot_training_curves(results, study_dir / "training_curves.png"))
    return paths
