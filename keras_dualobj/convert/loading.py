"""One call from a released reference model (folder, file or `hf://` path) to a `DualLM`."""

import json
from pathlib import Path

from keras_dualobj.convert.checkpoint import load_state_dict
from keras_dualobj.convert.weights import from_reference

HUB_SCHEME = "hf://"
# File names looked for in a model folder, in order of preference.
CHECKPOINT_NAMES = ("model.safetensors", "state_dict.bin", "pytorch_model.bin", "model.bin")
CONFIG_NAMES = ("config.json",)
TOKENIZER_NAMES = ("tokenizer.json",)


def parse_hub_path(path):
    """`"hf://owner/name@revision"` -> `("owner/name", "revision" or None)`.

    Example:
    >>> parse_hub_path("hf://ltg/dual-lm-470m@alpha_0.750_n-reps=32")
    ('ltg/dual-lm-470m', 'alpha_0.750_n-reps=32')
    >>> parse_hub_path("hf://ltg/dual-lm-470m")
    ('ltg/dual-lm-470m', None)
    """
    spec = str(path)[len(HUB_SCHEME):]
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or (_ and not revision):
        raise ValueError(
            f"A Hugging Face path must read 'hf://owner/name' or 'hf://owner/name@revision'; "
            f"received {str(path)!r}."
        )
    return repo_id, revision or None


def download_from_hub(path, cache_dir=None):
    """Downloads an `hf://owner/name@revision` model repository; returns its folder.

    Needs internet and `huggingface_hub`; the revision is a branch, tag or commit
    (the paper's α x R models are branches of one repository).
    """
    repo_id, revision = parse_hub_path(path)
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError(
            f"Loading {str(path)!r} needs `pip install huggingface_hub` and internet."
        ) from None
    folder = huggingface_hub.snapshot_download(
        repo_id=repo_id, revision=revision, cache_dir=cache_dir
    )
    return Path(folder)


def _first_existing(folder, names, what):
    for name in names:
        if (folder / name).is_file():
            return folder / name
    if what is None:
        return None
    raise FileNotFoundError(
        f"No {what} in {str(folder)!r}: looked for {list(names)}; found "
        f"{sorted(p.name for p in folder.iterdir())}."
    )


def resolve_reference_files(path_or_dir, config=None, tokenizer=None, cache_dir=None):
    """The checkpoint, config and tokenizer of a reference model.

    Args:
        path_or_dir: a checkpoint file, a folder holding one (`model.safetensors`,
            `state_dict.bin`, ...) with `config.json` and `tokenizer.json`, or an
            `hf://owner/name@revision` path (downloaded; needs internet).
        config: a config dict or JSON path overriding the folder's `config.json`
            (required with a bare checkpoint file).
        tokenizer: a `tokenizer.json` path overriding the folder's (optional).
        cache_dir: Hugging Face cache folder for `hf://` paths.

    Returns:
        dict with `checkpoint` (a path), `config` (a dict) and `tokenizer` (a path
        or None).
    """
    if str(path_or_dir).startswith(HUB_SCHEME):
        path = download_from_hub(path_or_dir, cache_dir=cache_dir)
    else:
        path = Path(path_or_dir)
    if path.is_dir():
        checkpoint = _first_existing(path, CHECKPOINT_NAMES, "checkpoint")
        config_path = _first_existing(path, CONFIG_NAMES, None if config else "config")
        tokenizer_path = _first_existing(path, TOKENIZER_NAMES, None)
    elif path.is_file():
        checkpoint, config_path, tokenizer_path = path, None, None
    else:
        raise FileNotFoundError(f"No checkpoint file or model folder at {str(path)!r}.")
    config = config if config is not None else config_path
    if config is None:
        raise ValueError(
            f"{str(path)!r} is a checkpoint file: pass `config=` (the reference's JSON "
            "config, a path or a dict)."
        )
    if not isinstance(config, dict):
        config = json.loads(Path(config).read_text(encoding="utf-8"))
    return {
        "checkpoint": checkpoint,
        "config": config,
        "tokenizer": Path(tokenizer) if tokenizer is not None else tokenizer_path,
    }


def load_reference_tokenizer(path):
    """Our tokenizer layer for a reference `tokenizer.json` (same ids as `tokenizers`).

    See `keras_dualobj.data.TokenizerJsonBytePairTokenizer`.
    """
    from keras_dualobj.data.json_bpe_tokenizer import TokenizerJsonBytePairTokenizer

    return TokenizerJsonBytePairTokenizer(tokenizer_json=Path(path))


def load_reference_model(
    path_or_dir,
    ar_fraction=0.5,
    config=None,
    tokenizer=None,
    cache_dir=None,
    trust_pickle=False,
    dtype=None,
    **dual_lm_kwargs,
):
    """A `DualLM` holding a released reference model (weights, architecture, tokenizer).

    Args:
        path_or_dir: see `resolve_reference_files` (a folder, a checkpoint file or
            `hf://ltg/<name>@<revision>`; the hub path needs internet).
        ar_fraction: the AR share α for further training (`DualLM`'s argument).
        config: reference JSON config (path or dict) overriding the folder's.
        tokenizer: `tokenizer.json` path overriding the folder's; with none at all
            the model has no tokenizer (ids in, ids out).
        cache_dir: Hugging Face cache folder.
        trust_pickle: read `.bin` files with full pickle (only for files you trust).
        dtype: the backbone's dtype policy.
        **dual_lm_kwargs: passed to `DualLM` (`seed`, `z_loss_weight`, ...).

    Example:
    >>> import os, tempfile, json
    >>> import numpy as np
    >>> from keras_dualobj.convert import reference_shapes, save_state_dict
    >>> folder = tempfile.mkdtemp()
    >>> config = {"vocab_size": 300, "hidden_size": 16, "d_h": 8,
    ...           "num_attention_heads": 2, "intermediate_size": 24, "num_layers": 1,
    ...           "max_sequence_length": 64, "rope_theta": 10000, "norm_eps": 1e-7,
    ...           "tie_weights": False, "attention_pre_norm_affine": True,
    ...           "feed_forward_pre_norm_affine": True, "classifier_pre_norm_affine": True}
    >>> _ = open(os.path.join(folder, "config.json"), "w").write(json.dumps(config))
    >>> rng = np.random.default_rng(0)
    >>> save_state_dict({n: rng.normal(size=s).astype("float32")
    ...                  for n, s in reference_shapes(config).items()},
    ...                 os.path.join(folder, "model.safetensors"))
    >>> model = load_reference_model(folder, ar_fraction=0.75)
    >>> model.ar_fraction, model.backbone.num_layers
    (0.75, 1)
    """
    files = resolve_reference_files(path_or_dir, config, tokenizer, cache_dir)
    state_dict = load_state_dict(files["checkpoint"], trust_pickle=trust_pickle)
    backbone = from_reference(state_dict, files["config"], dtype=dtype)
    loaded_tokenizer = None
    if files["tokenizer"] is not None:
        loaded_tokenizer = load_reference_tokenizer(files["tokenizer"])
        if loaded_tokenizer.vocabulary_size() > backbone.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {loaded_tokenizer.vocabulary_size()} ids but the model "
                f"only {backbone.vocabulary_size} (config vocab_size)."
            )
    from keras_dualobj.models import DualLM

    return DualLM(
        backbone, ar_fraction=ar_fraction, tokenizer=loaded_tokenizer, **dual_lm_kwargs
    )
