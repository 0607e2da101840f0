"""Load the paper's released models (the reference PyTorch implementation) into Keras.

`from_reference` / `to_reference` map weights, `load_state_dict` reads a checkpoint
file, `load_reference_tokenizer` a `tokenizer.json`, and `load_reference_model`
does all three for a directory, a checkpoint file or an `hf://` Hugging Face path.
`from_keras_hub` / `to_keras_hub` do the same for keras-hub's Llama 3 and Qwen 2
models (backbones, tasks, presets), and back.
"""

from keras_dualobj.convert.checkpoint import load_state_dict
from keras_dualobj.convert.checkpoint import save_state_dict
from keras_dualobj.convert.keras_hub import causal_logits_error
from keras_dualobj.convert.keras_hub import from_keras_hub
from keras_dualobj.convert.keras_hub import to_keras_hub
from keras_dualobj.convert.loading import load_reference_model
from keras_dualobj.convert.loading import load_reference_tokenizer
from keras_dualobj.convert.loading import resolve_reference_files
from keras_dualobj.convert.reference_config import REQUIRED_KEYS
from keras_dualobj.convert.reference_config import backbone_arguments
from keras_dualobj.convert.reference_config import reference_config
from keras_dualobj.convert.weights import from_reference
from keras_dualobj.convert.weights import reference_shapes
from keras_dualobj.convert.weights import to_reference

__all__ = [
    "REQUIRED_KEYS",
    "backbone_arguments",
    "causal_logits_error",
    "from_keras_hub",
    "from_reference",
    "load_reference_model",
    "load_reference_tokenizer",
    "load_state_dict",
    "reference_config",
    "reference_shapes",
    "resolve_reference_files",
    "save_state_dict",
    "to_keras_hub",
    "to_reference",
]
