"""The repetition study: α × repetitions grids, their results, plots and recommendations.

The names load on first use (`keras_dualobj.utils.lazy`): the command line reads the study's
defaults (`keras_dualobj.study.defaults`) and the paper's rule (`keras_dualobj.study.paper`)
before Keras is imported.
"""

from keras_dualobj.utils.lazy import lazy_exports

_MODULES = {
    "analysis": ("analyse_study",),
    "config": ("StudyConfig",),
    "gp_analysis": ("optimal_alpha",),
    "paper": ("paper_ar_fraction",),
    "recommend": ("recommend_ar_fraction",),
    "regime": ("preset_regime", "regime_rows"),
    "results": ("CellResult", "read_results"),
    "runner": ("plan_cells", "run_study"),
    "seeds": ("seed_statistics",),
    "summary": ("summary_table",),
}

__getattr__, __dir__ = lazy_exports(
    __name__, {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
)
