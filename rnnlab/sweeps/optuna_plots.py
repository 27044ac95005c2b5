"""An Optuna sweep's own figures: the optimisation history and the parameter importances, drawn by
Optuna's matplotlib visualisation into the sweep's ``plots/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

HISTORY_PNG, IMPORTANCE_PNG = "optuna_history.png", "optuna_importances.png"


def write_study_plots(study: Any, plots_dir: Path, say: Callable[[str], None]) -> list[Path]:
    """Optuna's optimisation history and parameter importances, as PNGs beside the sweep's plots."""
    import warnings

    import matplotlib
    from optuna.trial import TrialState

    matplotlib.use("Agg")  # Optuna draws through pyplot, whose figures must be closed through it
    import matplotlib.pyplot as plt

    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        return []
    from optuna.visualization import matplotlib as vis

    paths = []
    figures = [(HISTORY_PNG, vis.plot_optimization_history)]
    if len(done) >= 2 and len(done[0].params) >= 1:
        figures.append((IMPORTANCE_PNG, vis.plot_param_importances))
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, plot in figures:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = plot(study)
                fig = ax.figure
                fig.set_size_inches(7, 4.5)
                fig.tight_layout()
                fig.savefig(plots_dir / name, dpi=100)
                plt.close(fig)
            paths.append(plots_dir / name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. importances of equal values
            say(f"note: no {name}: {exc}")
    return paths
