"""The study's own defaults beside `keras_dualobj.training.RunSpec`'s.

A leaf that imports neither Keras nor TensorFlow, so that the command line can read it
before Keras is imported.

>>> STUDY_DEFAULTS
{'elbo_samples': 2}
"""

# The study measures the held-out MD ELBO, so it draws two stratified masks per held-out
# row (a training run logs one).
STUDY_DEFAULTS = {"elbo_samples": 2}
