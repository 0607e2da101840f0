"""Saving and loading a `DualLM` as a keras-hub preset directory.

The layout is keras-hub's (`keras_hub.src.utils.preset_utils`), so a preset can be
uploaded with `keras_hub.upload_preset` and its backbone loaded by
`keras_hub.models.Backbone.from_preset`:

    preset_dir/
      config.json          the DualBackbone config       (Backbone.save_to_preset)
      model.weights.h5     the backbone's weights
      metadata.json        keras / keras-hub versions, parameter count
      task.json            the DualLM config (α, objective options, special ids), and
                           the decoder given to `compile(decoder=...)`, if any
      preprocessor.json    the DualLMPreprocessor        (Preprocessor.save_to_preset)
      tokenizer.json       the tokenizer's config
      assets/tokenizer/    its vocabulary files, if any (BPE)

Named presets (`keras_dualobj.models.presets`) are architectures with fresh weights;
these directories hold trained weights.

keras-hub drops a task's compile configuration from `task.json`, and with it the
decoder of `generate` (`compile(decoder=...)`); it is kept there under `"decoder"`
(serialized, as a `.keras` file's compile configuration holds it), and set again on
load without compiling the model. Presets of older versions kept an AR sampler under
`"sampler"`; it loads as that sampler's `ARDecoder`.
"""

import json
import os
from pathlib import Path

import keras

from keras_hub.src.utils.preset_utils import TASK_CONFIG_FILE
from keras_hub.src.utils.preset_utils import check_config_class
from keras_hub.src.utils.preset_utils import check_file_exists
from keras_hub.src.utils.preset_utils import get_preset_loader
from keras_hub.src.utils.preset_utils import get_preset_saver
from keras_hub.src.utils.preset_utils import load_json

from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import get as get_decoder
from keras_dualobj.models.presets import PRESETS

DECODER_KEY = "decoder"
SAMPLER_KEY = "sampler"  # presets of older versions


def is_named_architecture(preset):
    """Whether `preset` names one of our architectures (not a saved directory).

    Example:
    >>> is_named_architecture("small"), is_named_architecture("/tmp/my_preset")
    (True, False)
    """
    return isinstance(preset, str) and preset in PRESETS


def save_task_preset(task, preset_dir, max_shard_size=10, overwrite=False):
    """Writes `task` (a `DualLM`) into `preset_dir` in keras-hub's layout.

    A folder that holds anything is refused unless `overwrite=True`: keras-hub
    would write into it and leave the other files beside the preset (an older
    preset's tokenizer assets or weight shards among them).

    Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "notes.txt").write_text("mine")
    >>> save_task_preset(None, folder)
    Traceback (most recent call last):
    ...
    ValueError: save_to_preset: ... is not empty (1 entries, e.g. ['notes.txt'])...`overwrite=True`...
    """
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False; received {overwrite!r}.")
    folder = Path(preset_dir) if "://" not in str(preset_dir) else None
    if folder is not None and folder.exists() and not folder.is_dir():
        raise ValueError(f"save_to_preset: {str(folder)!r} exists and is not a folder.")
    entries = sorted(path.name for path in folder.iterdir()) if folder and folder.is_dir() else []
    if entries and not overwrite:
        raise ValueError(
            f"save_to_preset: {str(folder)!r} is not empty ({len(entries)} entries, e.g. "
            f"{entries[:3]}); a preset is not merged into other files. Save into a new "
            "or empty folder, or pass `overwrite=True` to replace the preset files there."
        )
    get_preset_saver(str(preset_dir)).save_task(task, max_shard_size=max_shard_size)
    decoder = getattr(task, "decoder", None)
    if decoder is not None:
        path = os.path.join(str(preset_dir), TASK_CONFIG_FILE)
        with open(path, encoding="utf-8") as file:
            task_config = json.load(file)
        task_config[DECODER_KEY] = keras.saving.serialize_keras_object(decoder)
        with open(path, "w", encoding="utf-8") as file:
            file.write(json.dumps(task_config, indent=4))


def load_task_preset(cls, preset, load_weights=True, **kwargs):
    """Loads a `DualLM` saved by `save_task_preset`; `kwargs` override its config.

    Raises a `ValueError` naming the directory when it holds no `task.json` of a
    `DualLM` (for example a bare backbone preset: use `DualBackbone.from_preset`).
    """
    preset = str(preset)
    if "://" not in preset and ":" not in preset and not os.path.isdir(preset):
        raise ValueError(
            f"Unknown preset {preset!r}; accepted are {list(PRESETS)}, a saved preset "
            "directory, or a Kaggle / Hugging Face handle."
        )
    loader = get_preset_loader(preset)
    task_config = load_json(preset, TASK_CONFIG_FILE) if check_file_exists(
        preset, TASK_CONFIG_FILE
    ) else None
    if task_config is None or not issubclass(check_config_class(task_config), cls):
        raise ValueError(
            f"{preset!r} is not a saved {cls.__name__} preset (no {TASK_CONFIG_FILE} of a "
            f"{cls.__name__}); accepted are a directory written by `save_to_preset` or "
            f"one of {list(PRESETS)}."
        )
    task = loader.load_task(cls, load_weights, load_task_weights=False, **kwargs)
    for key in (DECODER_KEY, SAMPLER_KEY):
        if task_config.get(key) is not None:
            task.decoder = saved_decoder(task_config[key], preset)
    return task


def saved_decoder(config, preset="the preset"):
    """The decoder `task.json` holds: a serialized decoder, or (older) an AR sampler.

    Example:
    >>> import keras, keras_hub
    >>> saved_decoder("top_k").sampler
    'top_k'
    >>> config = keras.saving.serialize_keras_object(keras_hub.samplers.TopKSampler(k=3))
    >>> saved_decoder(config).sampler.k
    3
    >>> saved_decoder(keras.saving.serialize_keras_object(ARDecoder("greedy"))).sampler
    'greedy'
    """
    try:
        if isinstance(config, dict) and "keras_dualobj>" not in str(config.get("registered_name")):
            return ARDecoder(keras.saving.deserialize_keras_object(config))
        return get_decoder(config)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{preset!r}: the decoder saved in {TASK_CONFIG_FILE} cannot be loaded "
            f"({error}); received {config!r}."
        ) from None
