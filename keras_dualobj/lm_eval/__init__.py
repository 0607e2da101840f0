"""lm-evaluation-harness on a `DualLM`: the registered lm-eval model (`model.py`) and runs of
harness tasks once per scoring mode (`harness.py`). Needs `pip install 'keras-dualobj[eval]'`.

It sits above `keras_dualobj.models` (it loads saved models); the scoring it calls is
`DualLM.score`, over the pure functions of `keras_dualobj.evaluation`.
"""
