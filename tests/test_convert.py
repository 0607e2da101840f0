"""The reference converter against a NumPy re-implementation of the reference forward pass.

The NumPy model below is written from the description of the paper's reference
implementation (ltgoslo/dual-language-models), with PyTorch's `[out, in]` matrices:
embedding -> layers (pre-norm attention with rotate-half RoPE, pre-norm SwiGLU whose
up-projection's first half is the value and second half the gate) -> head (RMSNorm,
projection, tanh-GELU, vocabulary projection with bias). Attention is causal or
bidirectional for the whole batch, and never crosses documents.
"""

import json
import math

import keras
import numpy as np
import pytest
import torch
from keras import ops

from keras_dualobj.cli import main
from keras_dualobj.convert import from_reference
from keras_dualobj.convert import load_reference_model
from keras_dualobj.convert import load_state_dict
from keras_dualobj.convert import reference_config
from keras_dualobj.convert import save_state_dict
from keras_dualobj.convert import to_reference
from keras_dualobj.models import DualBackbone

from conftest import tiny_backbone

VOCABULARY, HIDDEN, HEADS, HEAD_DIM, INTERMEDIATE, LAYERS = 300, 32, 4, 8, 48, 2


def make_config(**overrides):
    config = {
        "attention_pre_norm_affine": True,
        "classifier_pre_norm_affine": True,
        "d_h": HEAD_DIM,
        "feed_forward_pre_norm_affine": True,
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "max_sequence_length": 64,
        "model": "Base",
        "norm_eps": 1e-7,
        "num_attention_heads": HEADS,
        "num_layers": LAYERS,
        "rope_theta": 500,
        "vocab_size": VOCABULARY,
        "tie_weights": False,
    }
    config.update(overrides)
    return config


def random_state_dict(config, seed=0):
    """Random reference weights, none zero: magnitudes in [0.2, 1] / sqrt(fan_in)."""
    rng = np.random.default_rng(seed)
    hidden, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]

    def matrix(rows, cols):
        values = rng.uniform(0.2, 1.0, (rows, cols)) * rng.choice([-1.0, 1.0], (rows, cols))
        return (values / math.sqrt(cols)).astype("float32")

    def scale(size):
        return rng.uniform(0.5, 1.5, size).astype("float32")

    state = {"embedding.word_embedding.weight": matrix(vocab, hidden) * 4}
    for i in range(config["num_layers"]):
        prefix = f"encoder.layers.{i}"
        if config["attention_pre_norm_affine"]:
            state[f"{prefix}.attention.pre_norm.weight"] = scale(hidden)
        for j in range(3):
            state[f"{prefix}.attention.qkv_proj.weights.{j}"] = matrix(hidden, hidden)
        state[f"{prefix}.attention.out_proj.weight"] = matrix(hidden, hidden)
        if config["feed_forward_pre_norm_affine"]:
            state[f"{prefix}.mlp.pre_norm.weight"] = scale(hidden)
        state[f"{prefix}.mlp.up_proj.weights.0"] = matrix(inter, hidden)
        state[f"{prefix}.mlp.up_proj.weights.1"] = matrix(inter, hidden)
        state[f"{prefix}.mlp.down_proj.weight"] = matrix(hidden, inter)
    if config["classifier_pre_norm_affine"]:
        state["classifier.pre_norm.weight"] = scale(hidden)
    state["classifier.projection.weight"] = matrix(hidden, hidden)
    state["classifier.emb2vocab.weight"] = (
        state["embedding.word_embedding.weight"] if config["tie_weights"] else matrix(vocab, hidden)
    )
    state["classifier.emb2vocab.bias"] = rng.uniform(0.1, 1.0, vocab).astype("float32")
    return state


# --- The NumPy reference forward pass ---------------------------------------------


def rms_norm(x, weight, eps):
    normed = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return normed if weight is None else normed * weight


def rotate_half_rope(x, theta):
    """x: [batch, heads, length, head_dim]."""
    head_dim, length = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = np.outer(np.arange(length, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=-1)
    half = head_dim // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * np.cos(angles) + rotated * np.sin(angles)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def reference_logits(state, config, token_ids, document_ids, causal):
    """Logits [batch, length, vocab] of the reference model, in float64."""
    w = {name: np.asarray(value, np.float64) for name, value in state.items()}
    eps, heads, head_dim = config["norm_eps"], config["num_attention_heads"], config["d_h"]
    batch, length = token_ids.shape
    x = w["embedding.word_embedding.weight"][token_ids]
    allowed = document_ids[:, :, None] == document_ids[:, None, :]
    if causal:
        allowed = allowed & np.tril(np.ones((length, length), bool))[None]
    for i in range(config["num_layers"]):
        p = f"encoder.layers.{i}"
        h = rms_norm(x, w.get(f"{p}.attention.pre_norm.weight"), eps)

        def heads_of(matrix):
            return (h @ matrix.T).reshape(batch, length, heads, head_dim).transpose(0, 2, 1, 3)

        q = rotate_half_rope(heads_of(w[f"{p}.attention.qkv_proj.weights.0"]), config["rope_theta"])
        k = rotate_half_rope(heads_of(w[f"{p}.attention.qkv_proj.weights.1"]), config["rope_theta"])
        v = heads_of(w[f"{p}.attention.qkv_proj.weights.2"])
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = np.where(allowed[:, None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = (scores / scores.sum(-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, heads * head_dim)
        x = x + attended @ w[f"{p}.attention.out_proj.weight"].T
        h = rms_norm(x, w.get(f"{p}.mlp.pre_norm.weight"), eps)
        up = h @ np.concatenate(
            [w[f"{p}.mlp.up_proj.weights.0"], w[f"{p}.mlp.up_proj.weights.1"]]
        ).T
        value, gate = np.split(up, 2, axis=-1)
        x = x + (value * gate / (1.0 + np.exp(-gate))) @ w[f"{p}.mlp.down_proj.weight"].T
    h = rms_norm(x, w.get("classifier.pre_norm.weight"), eps)
    h = gelu_tanh(h @ w["classifier.projection.weight"].T)
    return h @ w["classifier.emb2vocab.weight"].T + w["classifier.emb2vocab.bias"]


# --- Fixtures -----------------------------------------------------------------------

TOKEN_IDS = np.random.default_rng(1).integers(16, VOCABULARY, (2, 12)).astype("int32")
# Two documents in the first row, three in the second: attention must not cross them.
DOCUMENT_IDS = np.array([[0] * 5 + [1] * 7, [0] * 3 + [1] * 4 + [2] * 5], "int32")

CONFIGS = {
    "large-like": make_config(),
    "tied, plain norms": make_config(
        tie_weights=True, attention_pre_norm_affine=False, classifier_pre_norm_affine=False
    ),
}


def keras_logits(backbone, causal):
    prefix = 0 if causal else TOKEN_IDS.shape[1]
    hidden = backbone(
        {
            "token_ids": TOKEN_IDS,
            "document_ids": DOCUMENT_IDS,
            "prefix_lengths": np.full((TOKEN_IDS.shape[0],), prefix, "int32"),
        }
    )
    return ops.convert_to_numpy(backbone.token_embedding(hidden, reverse=True))


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_converted_logits_equal_the_numpy_reference_causal_and_bidirectional(name):
    config = CONFIGS[name]
    state = random_state_dict(config)
    backbone = from_reference(state, config)
    for causal in (True, False):
        expected = reference_logits(state, config, TOKEN_IDS, DOCUMENT_IDS, causal)
        assert relative_error(keras_logits(backbone, causal), expected) < 1e-4
    # The two modes differ (the comparison would not catch a mask bug otherwise).
    causal_logits = reference_logits(state, config, TOKEN_IDS, DOCUMENT_IDS, True)
    bidirectional = reference_logits(state, config, TOKEN_IDS, DOCUMENT_IDS, False)
    assert relative_error(causal_logits, bidirectional) > 1e-2


def test_round_trip_is_exact_and_prefixes_and_torch_tensors_are_accepted():
    config = CONFIGS["large-like"]
    state = random_state_dict(config, seed=3)
    prefixed = {f"_orig_mod.model.{name}": torch.from_numpy(v) for name, v in state.items()}
    round_trip = to_reference(from_reference(prefixed, config))
    assert list(round_trip) == list(state)
    for name, value in state.items():
        assert round_trip[name].dtype == np.float32
        assert np.array_equal(round_trip[name], value), name
    # The config written back builds the same network.
    backbone = from_reference(state, config)
    assert {k: v for k, v in reference_config(backbone).items()} == {
        k: v for k, v in config.items() if k != "model"
    }


def test_tied_round_trip_lists_the_shared_matrix_under_both_names():
    config = CONFIGS["tied, plain norms"]
    state = random_state_dict(config, seed=4)
    round_trip = to_reference(from_reference(state, config))
    assert set(round_trip) == set(state)
    assert all(np.array_equal(round_trip[n], state[n]) for n in state)
    # Without the duplicate name (a tied state dict may omit it) it also loads.
    del state["classifier.emb2vocab.weight"]
    backbone = from_reference(state, config)
    assert not hasattr(backbone.token_embedding, "reverse_embeddings")


def test_bad_state_dicts_name_the_tensor_and_the_expected_shape():
    config = CONFIGS["large-like"]
    state = random_state_dict(config)
    missing = dict(state)
    del missing["encoder.layers.1.mlp.up_proj.weights.1"]
    with pytest.raises(
        ValueError,
        match=r"missing tensor 'encoder.layers.1.mlp.up_proj.weights.1' \(expected shape \(48, 32\)\)",
    ):
        from_reference(missing, config)
    extra = dict(state, **{"encoder.layers.2.mlp.down_proj.weight": np.ones((32, 48), "float32")})
    with pytest.raises(ValueError, match=r"unexpected tensor 'encoder.layers.2.mlp.down_proj.weight' of shape \(32, 48\)"):
        from_reference(extra, config)
    wrong = dict(state, **{"classifier.emb2vocab.bias": np.ones((299,), "float32")})
    with pytest.raises(
        ValueError,
        match=r"tensor 'classifier.emb2vocab.bias' has shape \(299,\), expected shape \(300,\)",
    ):
        from_reference(wrong, config)
    with pytest.raises(TypeError, match="'classifier.emb2vocab.bias' must be a NumPy array"):
        from_reference(dict(state, **{"classifier.emb2vocab.bias": [1.0] * 300}), config)


@pytest.mark.parametrize("key", ["rope_theta", "d_h", "tie_weights", "feed_forward_pre_norm_affine"])
def test_a_missing_config_key_is_named(key):
    config = make_config()
    del config[key]
    with pytest.raises(ValueError, match=f"lacks the key '{key}'"):
        from_reference(random_state_dict(make_config()), config)


def test_inconsistent_heads_are_refused():
    with pytest.raises(ValueError, match=r"d_h \* num_attention_heads == hidden_size.*d_h=6"):
        from_reference({}, make_config(d_h=6))


def test_to_reference_refuses_a_head_the_reference_lacks():
    backbone = tiny_backbone(
        vocabulary_size=64, num_layers=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=2048,
    )
    with pytest.raises(ValueError, match="head_projection=False, head_bias=False"):
        to_reference(backbone)


@pytest.mark.parametrize("option", [{"num_key_value_heads": 1}, {"query_key_value_bias": True},
                                    {"rope_scaling_factor": 8.0}])
def test_to_reference_refuses_the_llama_family_options(option):
    arguments = dict(vocabulary_size=64, num_layers=1, num_heads=2, hidden_dim=16,
                     intermediate_dim=32, head_projection=True, head_bias=True)
    to_reference(DualBackbone(**arguments, num_key_value_heads=2))  # 2 of 2 heads: plain MHA
    with pytest.raises(ValueError, match=f"this backbone sets {option}"):
        to_reference(DualBackbone(**arguments, **option))


@pytest.fixture(scope="module")
def reference_folder(tmp_path_factory):
    """A folder laid out like a released model: safetensors, config, tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = tmp_path_factory.mktemp("released")
    config = make_config()
    state = random_state_dict(config, seed=5)
    save_state_dict(state, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    hf = Tokenizer(models.BPE(unk_token="<unk>"))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"] + [f"<special_{i}>" for i in range(11)]
    trainer = trainers.BpeTrainer(
        vocab_size=VOCABULARY, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    hf.train_from_iterator(["to be or not to be, that is the question"] * 50, trainer)
    hf.save(str(folder / "tokenizer.json"))
    return folder, state, config


def test_load_reference_model_from_a_folder_and_from_a_hub_path(reference_folder, monkeypatch):
    folder, state, config = reference_folder
    model = load_reference_model(folder, ar_fraction=0.75, seed=0)
    assert model.ar_fraction == 0.75
    logits = ops.convert_to_numpy(
        model.logits(TOKEN_IDS, DOCUMENT_IDS, np.zeros((2,), "int32"))
    )
    expected = reference_logits(state, config, TOKEN_IDS, DOCUMENT_IDS, causal=True)
    assert relative_error(logits, expected) < 1e-4
    assert model.tokenizer.detokenize(model.tokenizer.tokenize("to be or not")) == "to be or not"

    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, revision=None, cache_dir=None):
        calls.append((repo_id, revision))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    hub_model = load_reference_model("hf://ltg/dual-lm-470m@alpha_0.750_n-reps=32")
    assert calls == [("ltg/dual-lm-470m", "alpha_0.750_n-reps=32")]
    hub_logits = ops.convert_to_numpy(
        hub_model.logits(TOKEN_IDS, DOCUMENT_IDS, np.zeros((2,), "int32"))
    )
    assert np.array_equal(hub_logits, logits)
    with pytest.raises(ValueError, match="hf://owner/name@revision"):
        load_reference_model("hf://dual-lm-470m")


def test_a_bare_checkpoint_file_needs_a_config(reference_folder):
    folder, _, _ = reference_folder
    with pytest.raises(ValueError, match="pass `config=`"):
        load_reference_model(folder / "model.safetensors")


def test_cli_converts_a_torch_checkpoint_that_loads_generates_and_scores(
    reference_folder, tmp_path, capsys
):
    folder, state, config = reference_folder
    checkpoint = tmp_path / "state_dict.bin"
    # The reference's training checkpoint: the weights under "model", compiled names.
    torch.save(
        {
            "model": {f"_orig_mod.{n}": torch.from_numpy(v) for n, v in state.items()},
            "global_step": 7,
        },
        checkpoint,
    )
    assert set(load_state_dict(checkpoint)) == {f"_orig_mod.{n}" for n in state}
    output = tmp_path / "converted" / "model.keras"
    code = main(
        [
            "convert", str(checkpoint), "--config", str(folder / "config.json"),
            "--tokenizer", str(folder / "tokenizer.json"), "--output", str(output),
        ]
    )
    assert code == 0 and output.is_file()
    assert json.loads(capsys.readouterr().out)["layers"] == LAYERS
    model = keras.saving.load_model(output)
    assert type(model).__name__ == "DualLM"
    logits = ops.convert_to_numpy(model.logits(TOKEN_IDS, DOCUMENT_IDS, np.full((2,), 12, "int32")))
    expected = reference_logits(state, config, TOKEN_IDS, DOCUMENT_IDS, causal=False)
    assert relative_error(logits, expected) < 1e-4
    text = model.generate("to be", max_new_tokens=4, stop_token_ids=None)
    assert isinstance(text, str) and text.startswith("to be")
    # The AR score is the reference's causal log-likelihood.
    logits = reference_logits(state, config, TOKEN_IDS[:1], np.zeros((1, 12), "int32"), True)[0]
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    nll = -sum(log_probs[i - 1, TOKEN_IDS[0, i]] for i in range(1, 12))
    result = model.score(TOKEN_IDS[:1])
    assert result["num_tokens"].tolist() == [11]
    assert abs(float(result["nll"][0]) - nll) < 1e-4 * abs(nll)
    prefix_result = model.score(TOKEN_IDS[:1], "prefix", prefix_lengths=[6])
    assert prefix_result["num_tokens"].tolist() == [6]
    assert np.isfinite(prefix_result["nll"]).all()
    code = main(["convert", str(checkpoint), "--output", str(tmp_path / "x.keras")])
    assert code == 2 and "pass --config (" in capsys.readouterr().err


LARGE_JSON = {  # configs/large.json of the reference repository
    "attention_pre_norm_affine": True, "classifier_pre_norm_affine": True, "d_h": 64,
    "feed_forward_pre_norm_affine": True, "hidden_size": 1024, "intermediate_size": 3554,
    "max_sequence_length": 2048, "model": "Base", "norm_eps": 1e-07,
    "num_attention_heads": 16, "num_layers": 24, "rope_theta": 160000,
    "vocab_size": 51200, "tie_weights": False,
}


def reference_parameter_count(config):
    """The reference model's parameters, counted from its description."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    per_layer = 3 * h * h + h * h + 2 * i * h + i * h
    per_layer += h * (config["attention_pre_norm_affine"] + config["feed_forward_pre_norm_affine"])
    head = h * config["classifier_pre_norm_affine"] + h * h + v  # norm, projection, bias
    head += 0 if config["tie_weights"] else v * h
    return v * h + config["num_layers"] * per_layer + head


def test_paper_preset_is_the_reference_large_architecture_with_its_parameter_count():
    from keras_dualobj.convert import backbone_arguments
    from keras_dualobj.models import DualBackbone
    from keras_dualobj.models.presets import get_preset, parameter_counts

    import inspect

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(DualBackbone.__init__).parameters.items()
    }
    preset = get_preset("paper-470m")["backbone"]
    assert {**defaults, **preset, "dtype": None} == {**defaults, **backbone_arguments(LARGE_JSON)}
    assert reference_parameter_count(LARGE_JSON) == 468_700_160
    assert parameter_counts(preset)["total"] == reference_parameter_count(LARGE_JSON)
    # The real widths, one layer and a small vocabulary, built: the same count.
    small = dict(LARGE_JSON, num_layers=1, vocab_size=300)
    backbone = DualBackbone(**dict(backbone_arguments(small), initialization="normal"))
    assert backbone.count_params() == reference_parameter_count(small)


def test_a_pickled_object_outside_the_allow_list_needs_trust(tmp_path):
    path = tmp_path / "state_dict.bin"
    torch.save({"model": {"x": torch.ones(2)}, "scheduler": _Unlisted()}, path)
    with pytest.raises(ValueError, match="trust_pickle=True"):
        load_state_dict(path)
    assert load_state_dict(path, trust_pickle=True)["x"].tolist() == [1.0, 1.0]


class _Unlisted:
    """A pickled class torch's weights-only loader does not allow."""
