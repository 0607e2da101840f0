"""Reading and writing reference checkpoints: `torch.save` files and safetensors."""

import pickle
from pathlib import Path

TORCH_SUFFIXES = (".bin", ".pt", ".pth")
SAFETENSORS_SUFFIX = ".safetensors"


def _import_torch(path):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"Reading {str(path)!r} (a torch.save file) needs PyTorch: "
            '`pip install "keras-dualobj[torch]"` (the CPU wheel is enough), or convert '
            "it to .safetensors elsewhere."
        ) from None
    return torch


def _import_safetensors(path):
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            f"Reading {str(path)!r} needs safetensors: `pip install \"keras-dualobj[convert]\"`."
        ) from None
    return safetensors


def _state_dict_of(loaded, path):
    # The reference saves {"model": state_dict, "optimizer": ..., "global_step": ...}.
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        return loaded["model"]
    if isinstance(loaded, dict) and loaded and all(hasattr(v, "shape") for v in loaded.values()):
        return loaded
    keys = sorted(loaded) if isinstance(loaded, dict) else type(loaded).__name__
    raise ValueError(
        f"{str(path)!r} holds neither a state dict nor a dict with the weights under "
        f"'model' (the reference's state_dict.bin layout); found {keys}."
    )


def load_state_dict(path, trust_pickle=False):
    """The reference weights in a checkpoint file: `{name: array or tensor}`.

    `.bin` / `.pt` / `.pth`: a `torch.save` file (PyTorch needed), either a bare
    state dict or the reference's training checkpoint with the weights under
    `"model"`; read with `weights_only=True` unless `trust_pickle=True`.
    `.safetensors`: read with `safetensors` (NumPy; bfloat16 tensors through torch).

    Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save_state_dict({"classifier.emb2vocab.bias": np.ones(3, "float32")}, path)
    >>> load_state_dict(path)["classifier.emb2vocab.bias"].tolist()
    [1.0, 1.0, 1.0]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {str(path)!r}.")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        safetensors = _import_safetensors(path)
        try:
            return safetensors.numpy.load_file(str(path))
        except (TypeError, ValueError):
            # NumPy has no bfloat16: read such files as torch tensors.
            import safetensors.torch

            _import_torch(path)
            return safetensors.torch.load_file(str(path))
    if suffix in TORCH_SUFFIXES:
        torch = _import_torch(path)
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
        except pickle.UnpicklingError as error:
            # A full training checkpoint may pickle objects outside torch's allow-list.
            raise ValueError(
                f"{str(path)!r} holds objects that a weights-only load refuses ({error}). "
                "If you trust the file, pass trust_pickle=True (CLI: --trust-pickle)."
            ) from None
        return _state_dict_of(loaded, path)
    raise ValueError(
        f"Unknown checkpoint format {suffix!r} for {str(path)!r}; accepted are "
        f"{list(TORCH_SUFFIXES) + [SAFETENSORS_SUFFIX]}."
    )


def save_state_dict(state_dict, path):
    """Writes `{name: NumPy array}` as `.safetensors` or as a torch `.bin` (`{"model": ...}`).

    The `.bin` form is what the reference's training script resumes from
    (`torch.load(...)["model"]`).

    Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.safetensors")
    >>> save_state_dict({"x": np.zeros((2, 2), "float32")}, path)
    >>> os.path.getsize(path) > 0
    True
    """
    import numpy as np

    path = Path(path)
    arrays = {name: np.ascontiguousarray(value) for name, value in state_dict.items()}
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        safetensors = _import_safetensors(path)
        safetensors.numpy.save_file(arrays, str(path))
    elif suffix in TORCH_SUFFIXES:
        torch = _import_torch(path)
        torch.save({"model": {n: torch.from_numpy(a) for n, a in arrays.items()}}, str(path))
    else:
        raise ValueError(
            f"Unknown checkpoint format {suffix!r} for {str(path)!r}; accepted are "
            f"{list(TORCH_SUFFIXES) + [SAFETENSORS_SUFFIX]}."
        )
