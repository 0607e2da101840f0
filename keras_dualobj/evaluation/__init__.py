"""Scoring a dual model: AR and prefix-LM likelihood, the MD bound and pseudo-likelihood,
multiple choice.

These functions take the model's call function (`logits_fn(token_ids, document_ids,
prefix_lengths) -> logits`, i.e. `DualLM.logits`) or its `score` method, as keras-hub
samplers take `next`; `DualLM.score` and `DualLM.evaluate_multiple_choice` delegate here.
"""

from keras_dualobj.evaluation.language_modeling import evaluate_language_modeling
from keras_dualobj.evaluation.language_modeling import token_rows
from keras_dualobj.evaluation.likelihood import sequence_nll
from keras_dualobj.evaluation.md_bound import md_bound_values
from keras_dualobj.evaluation.md_bound import summarize_bound
from keras_dualobj.evaluation.multiple_choice import evaluate_multiple_choice
from keras_dualobj.evaluation.multiple_choice import load_multiple_choice
from keras_dualobj.evaluation.paper_scores import average_normalized_score
from keras_dualobj.evaluation.paper_scores import normalized_score
from keras_dualobj.evaluation.pseudo_likelihood import pseudo_log_likelihood
