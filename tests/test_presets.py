"""Presets: configurations, parameter counts against the paper, from_preset."""

import numpy as np
import pytest

from keras_dualobj.data import ByteTokenizer
from keras_dualobj.models import DualBackbone
from keras_dualobj.models import DualLM
from keras_dualobj.models.presets import get_preset
from keras_dualobj.models.presets import parameter_counts
from keras_dualobj.models.presets import preset_names


def _embedding_parameters(backbone):
    return sum(
        int(np.prod(v.shape)) for v in backbone.token_embedding.weights
    )


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("tiny", {}),
        ("small", {}),
        # The big presets' real widths with one layer and a small vocabulary: the
        # per-block arithmetic is checked on the paper's 1024 / 3554 shapes.
        ("paper-470m", {"num_layers": 1, "vocabulary_size": 300}),
        ("base", {"num_layers": 1, "vocabulary_size": 300}),
    ],
)
def test_parameter_counts_match_an_instantiated_backbone(preset, overrides):
    backbone = DualBackbone.from_preset(preset, **overrides)
    config = dict(get_preset(preset)["backbone"], **overrides)
    counts = parameter_counts(config)
    assert counts["total"] == backbone.count_params()
    assert counts["embedding"] == _embedding_parameters(backbone)
    assert counts["non_embedding"] == backbone.count_params() - _embedding_parameters(backbone)


def test_paper_preset_has_the_papers_470m_and_360m_non_embedding_parameters():
    config = get_preset("paper-470m")["backbone"]
    assert config == {
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
    }
    counts = parameter_counts(config)
    # The paper rounds: "470M parameters, 360M non-embedding".
    assert abs(counts["total"] - 470e6) / 470e6 < 0.01
    assert abs(counts["non_embedding"] - 360e6) / 360e6 < 0.01
    # The reference's count for configs/large.json (its head adds a 1024 x 1024
    # projection and a 51,200 bias to the vocabulary matrix).
    assert counts == {"total": 468_700_160, "embedding": 105_957_376,
                      "non_embedding": 362_742_784}
    training = get_preset("paper-470m")["training"]
    # 2048 sequences x 2048 tokens per step for 8192 steps = 2^35 tokens.
    assert training["batch_size"] * training["sequence_length"] * 8192 == training["token_budget"]


def test_base_preset_is_about_125m():
    counts = parameter_counts(get_preset("base")["backbone"])
    assert abs(counts["total"] - 125e6) / 125e6 < 0.02


def test_presets_grow_and_documented_table_matches():
    totals = [parameter_counts(get_preset(n)["backbone"])["total"] for n in preset_names()]
    assert totals == sorted(totals)
    from keras_dualobj.models import presets

    for name, total in zip(preset_names(), totals):
        line = next(line for line in presets.__doc__.splitlines() if line.startswith(f"| `{name}`"))
        assert f"{total:,}" in line, line


def test_dual_lm_from_preset_takes_the_tokenizer_vocabulary_and_splits_arguments():
    tokenizer = ByteTokenizer()
    model = DualLM.from_preset(
        "tiny", tokenizer=tokenizer, ar_fraction=0.25, seed=3, dropout=0.1
    )
    assert model.backbone.vocabulary_size == tokenizer.vocabulary_size() == 272
    assert model.backbone.dropout == 0.1 and model.ar_fraction == 0.25 and model.seed == 3
    assert model.tokenizer is tokenizer
    logits = model(np.full((1, 8), 20, "int32"))
    assert logits.shape == (1, 8, 272)


def test_unknown_preset_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match=r"'huge'.*\['nano', 'tiny', 'small', 'base', 'paper-470m'\]"):
        DualBackbone.from_preset("huge")
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        DualLM.from_preset("huge")
    with pytest.raises(ValueError, match="accepted presets"):
        get_preset("huge")


def test_a_byte_preset_comes_with_its_tokenizer_and_takes_strings():
    model = DualLM.from_preset("nano")
    assert isinstance(model.tokenizer, ByteTokenizer)
    [text] = model.generate(["ROMEO:"], max_new_tokens=3, strip_prompt=True)
    assert isinstance(text, str)
