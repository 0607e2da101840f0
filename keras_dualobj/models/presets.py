"""Named model configurations, from CPU tests to the paper's 470M model.

Each preset is an architecture (a `DualBackbone` config; weights are freshly
initialised, there are no pretrained checkpoints) plus training defaults the `train`
command uses (sequence length, batch size, optimiser, learning rate, tokenizer).

| preset | layers x width | heads | SwiGLU | RoPE θ | vocabulary | total | non-embedding |
|---|---|---|---|---|---|---|---|
| `nano` | 2 x 16 | 2 | 44 | 10,000 | 272 (bytes) | 15,056 | 6,352 |
| `tiny` | 2 x 64 | 4 | 172 | 10,000 | 272 (bytes) | 133,952 | 99,136 |
| `small` | 4 x 128 | 4 | 344 | 10,000 | 272 (bytes) | 861,312 | 791,680 |
| `base` | 12 x 768 | 12 | 2,048 | 160,000 | 51,200 (tied) | 124,275,456 | 84,953,856 |
| `paper-470m` | 24 x 1,024 | 16 | 3,554 | 160,000 | 51,200 | 468,700,160 | 362,742,784 |

"Non-embedding" leaves out the input embedding and the output head (vocabulary
matrix, and with the reference head its bias and projection), as the paper's
"360M non-embedding parameters" does. `paper-470m`
is the paper's model exactly as the reference implementation builds it (470M
total): its head is RMSNorm -> `1024 x 1024` projection -> tanh-GELU -> vocabulary
projection with a bias, its weights start from the reference initialisation, and
its parameter count equals the reference's for `configs/large.json`.
`base` is the only preset with a tied head, which puts it at GPT-2-small size
(~125M); the others keep the paper's untied head. `parameter_counts` computes these
numbers from a config without building the model.
"""

import copy

# Training defaults are what the `train` command uses unless told otherwise.
PRESETS = {
    "nano": {
        "description": "2 x 16, byte vocabulary: the paper's tokens-per-parameter regime on tiny Shakespeare.",
        "backbone": {
            "vocabulary_size": 272,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 16,
            "intermediate_dim": 44,
            "max_sequence_length": 64,
            "rope_max_wavelength": 10000,
        },
        "training": {
            "sequence_length": 64,
            "batch_size": 16,
            "optimizer": "muon",
            "learning_rate": 1e-2,
            "tokenizer": "byte",
            "token_budget": 589_824,
        },
    },
    "tiny": {
        "description": "2 x 64, byte vocabulary: CPU tests in seconds.",
        "backbone": {
            "vocabulary_size": 272,
            "num_layers": 2,
            "num_heads": 4,
            "hidden_dim": 64,
            "intermediate_dim": 172,
            "max_sequence_length": 64,
            "rope_max_wavelength": 10000,
        },
        "training": {
            "sequence_length": 64,
            "batch_size": 16,
            "optimizer": "muon",
            "learning_rate": 1e-2,
            "tokenizer": "byte",
            "token_budget": 65_536,
        },
    },
    "small": {
        "description": "4 x 128, byte vocabulary (the pilot's model): a CPU demo in minutes.",
        "backbone": {
            "vocabulary_size": 272,
            "num_layers": 4,
            "num_heads": 4,
            "hidden_dim": 128,
            "intermediate_dim": 344,
            "max_sequence_length": 128,
            "rope_max_wavelength": 10000,
        },
        "training": {
            "sequence_length": 128,
            "batch_size": 32,
            "optimizer": "muon",
            "learning_rate": 1e-2,
            "tokenizer": "byte",
            "token_budget": 524_288,
        },
    },
    "base": {
        "description": "12 x 768, tied head (~125M, GPT-2-small size): one accelerator.",
        "backbone": {
            "vocabulary_size": 51200,
            "num_layers": 12,
            "num_heads": 12,
            "hidden_dim": 768,
            "intermediate_dim": 2048,
            "max_sequence_length": 2048,
            "rope_max_wavelength": 160000,
            "tie_word_embeddings": True,
        },
        "training": {
            "sequence_length": 2048,
            "batch_size": 256,
            "optimizer": "muon",
            "learning_rate": 7e-3,
            "tokenizer": "bpe",
            "token_budget": 2**33,
        },
    },
    "paper-470m": {
        "description": "24 x 1024, the paper's 470M model (arXiv 2512.14549).",
        "backbone": {
            "vocabulary_size": 51200,
            "num_layers": 24,
            "num_heads": 16,
            "hidden_dim": 1024,
            "intermediate_dim": 3554,
            "max_sequence_length": 2048,
            "rope_max_wavelength": 160000,
            "layer_norm_epsilon": 1e-7,
            "head_projection": True,
            "head_bias": True,
            "initialization": "reference",
        },
        "training": {
            # 2048 sequences of 2048 tokens per step, 8192 steps: 2^35 tokens.
            "sequence_length": 2048,
            "batch_size": 2048,
            "optimizer": "muon",
            "learning_rate": 7e-3,
            "tokenizer": "bpe",
            "token_budget": 2**35,
        },
    },
}


def preset_names():
    """The preset names, smallest first.

    Example:
    >>> preset_names()
    ['nano', 'tiny', 'small', 'base', 'paper-470m']
    """
    return list(PRESETS)


def get_preset(name):
    """A copy of preset `name`: `{"description", "backbone", "training"}`.

    Example:
    >>> get_preset("paper-470m")["backbone"]["intermediate_dim"]
    3554
    """
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; accepted presets are {preset_names()}.")
    return copy.deepcopy(PRESETS[name])


def parameter_counts(backbone_config):
    """Parameter counts of a `DualBackbone` config, without building it.

    Per block: q, k, v, o (`4 * hidden^2`, less for k and v with fewer key/value
    heads, plus q/k/v biases with `query_key_value_bias`), SwiGLU gate, up, down
    (`3 * hidden * intermediate`) and the affine RMSNorm scales (`hidden` each);
    plus the token embedding (`vocabulary * hidden`), the vocabulary matrix (the
    same again unless tied), its bias (`head_bias`), the head projection
    (`hidden^2` with `head_projection`) and the final RMSNorm scale if affine.

    Args:
        backbone_config: dict with `vocabulary_size`, `num_layers`, `hidden_dim`,
            `intermediate_dim` and optionally `tie_word_embeddings`.

    Returns:
        dict with `total`, `embedding` (input embedding + the output head: untied
        vocabulary matrix, bias, projection) and `non_embedding`.

    Example:
    >>> counts = parameter_counts(get_preset("paper-470m")["backbone"])
    >>> round(counts["total"] / 1e6), round(counts["non_embedding"] / 1e6)
    (469, 363)
    """
    vocabulary = backbone_config["vocabulary_size"]
    layers = backbone_config["num_layers"]
    hidden = backbone_config["hidden_dim"]
    intermediate = backbone_config["intermediate_dim"]
    tied = backbone_config.get("tie_word_embeddings", False)
    norms = [backbone_config.get(f"{kind}_norm_affine", True) for kind in ("attention", "feed_forward")]
    heads = backbone_config.get("num_heads", 1)
    # Grouped-query attention: k and v project to `num_key_value_heads` heads only.
    key_value_width = hidden * (backbone_config.get("num_key_value_heads") or heads) // heads
    attention = 2 * hidden * hidden + 2 * hidden * key_value_width
    if backbone_config.get("query_key_value_bias", False):
        attention += hidden + 2 * key_value_width
    per_block = attention + 3 * hidden * intermediate + sum(norms) * hidden
    non_embedding = layers * per_block
    non_embedding += hidden if backbone_config.get("head_norm_affine", True) else 0
    embedding = vocabulary * hidden * (1 if tied else 2)
    embedding += hidden * hidden if backbone_config.get("head_projection", False) else 0
    embedding += vocabulary if backbone_config.get("head_bias", False) else 0
    return {
        "total": non_embedding + embedding,
        "embedding": embedding,
        "non_embedding": non_embedding,
    }
