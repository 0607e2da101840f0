"""The repetition study: α × repetitions grids, their results, plots and recommendations."""

from keras_dualobj.study.recommend import paper_ar_fraction
