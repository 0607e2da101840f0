"""The repetition study: α × repetitions grids, their results, plots and recommendations."""

from keras_dualobj.study.analysis import analyse_study
from keras_dualobj.study.gp_analysis import optimal_alpha
from keras_dualobj.study.paper import paper_ar_fraction
from keras_dualobj.study.recommend import recommend_ar_fraction
from keras_dualobj.study.regime import preset_regime
from keras_dualobj.study.regime import regime_rows
from keras_dualobj.study.results import CellResult
from keras_dualobj.study.results import read_results
from keras_dualobj.study.runner import StudyConfig
from keras_dualobj.study.runner import plan_cells
from keras_dualobj.study.runner import run_study
from keras_dualobj.study.seeds import seed_statistics
from keras_dualobj.study.summary import summary_table
