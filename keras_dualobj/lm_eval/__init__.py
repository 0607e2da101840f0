"""lm-evaluation-harness on a `DualLM`: the registered lm-eval model (`model.py`), runs of
harness tasks once per scoring mode (`harness.py`), the paper's downstream suite offline
(`suite.py`), and `python -m keras_dualobj.lm_eval`, lm-eval's own command line with our
model registered (`__main__.py`). Needs `pip install 'keras-dualobj[eval]'`.

It sits above `keras_dualobj.models` (it loads saved models); the scoring it calls is
`DualLM.score`, over the pure functions of `keras_dualobj.evaluation`.
"""
