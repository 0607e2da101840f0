"""Saving a tokenizer on its own (it is also saved inside any Keras model)."""

import json
from pathlib import Path

import keras

CONFIG_FILE = "tokenizer_config.json"


def save_tokenizer(tokenizer, directory):
    """Writes `tokenizer` to `directory`: its Keras config plus its assets.

    A model that holds the tokenizer saves it by itself (`model.save`); this
    is for reusing one tokenizer across runs, e.g. training several models on
    the same BPE.

    Args:
        tokenizer: a Keras-serializable tokenizer layer.
        directory: folder to create or overwrite files in.

    Example:

    >>> import tempfile
    >>> from keras_dualobj.data import ByteTokenizer
    >>> folder = tempfile.mkdtemp()
    >>> save_tokenizer(ByteTokenizer(), folder)
    >>> load_tokenizer(folder).vocabulary_size()
    272
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(tokenizer)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    if hasattr(tokenizer, "save_assets"):
        tokenizer.save_assets(str(directory))


def load_tokenizer(directory):
    """Loads a tokenizer written by `save_tokenizer`.

    Args:
        directory: the folder given to `save_tokenizer`.

    Returns:
        The tokenizer layer, with the same vocabulary and special ids.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(
            f"No tokenizer in {str(directory)!r}: {CONFIG_FILE} is missing. Pass "
            "a folder written by `save_tokenizer`."
        )
    # Our tokenizers register themselves on import; make sure they are known.
    from keras_dualobj.data import bpe_tokenizer, byte_tokenizer  # noqa: F401

    tokenizer = keras.saving.deserialize_keras_object(json.loads(config_path.read_text()))
    if getattr(tokenizer, "file_assets", None):
        tokenizer.load_assets(str(directory))
    return tokenizer
