"""MD decoding: reveal schedule, remasking, blocks, the shifted convention, infilling."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_dualobj import DualLM
from keras_dualobj.data import ByteTokenizer
from keras_dualobj.generation import reveal_schedule
from keras_dualobj.decoders import MDDecoder

from conftest import tiny_backbone

MASK = 4
VOCABULARY_SIZE = 64


@pytest.fixture(scope="module")
def backbone():
    keras.utils.set_random_seed(11)
    return tiny_backbone(vocabulary_size=VOCABULARY_SIZE, max_sequence_length=32)


@pytest.fixture(scope="module")
def model(backbone):
    return DualLM(backbone)


def canvas(prompts, num_masks):
    """Prompts followed by `num_masks` masks, all rows the same length."""
    return np.array([list(p) + [MASK] * num_masks for p in prompts], "int32")


def proposals_and_confidence(model, token_ids, shifted=True):
    """What one decoding step sees: per position, the argmax token and its probability."""
    length = token_ids.shape[1]
    logits = ops.convert_to_numpy(
        model.logits(token_ids, np.zeros_like(token_ids), np.full((len(token_ids),), length))
    ).astype("float64")
    if shifted:
        logits = np.concatenate([logits[:, :1], logits[:, :-1]], axis=1)
    logits[..., MASK] = -np.inf
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return probabilities.argmax(-1), probabilities.max(-1)


def fill(model, token_ids, block_length=None, **options):
    """`MDDecoder.fill`, argmax in one block unless told otherwise."""
    num_masks = int((np.asarray(token_ids) == MASK).sum(axis=1).max())
    options.setdefault("temperature", 0.0)
    decoder = MDDecoder(block_length=block_length or max(num_masks, 1), **options)
    return decoder.fill(model, token_ids)


def test_reveal_schedule_splits_steps_over_blocks():
    assert reveal_schedule(8, 8, 4) == [(0, 1)] * 4 + [(1, 1)] * 4
    assert reveal_schedule(6, 4, 3) == [(0, 2), (0, 1), (1, 2), (1, 1)]
    assert sum(count for _, count in reveal_schedule(7, 3)) == 7


def test_one_position_per_step_when_num_steps_equals_length(model):
    token_ids = canvas([[1, 20, 21], [1, 30, 31]], 6)
    result = fill(model, token_ids, num_steps=6)
    reveal_step = result["reveal_step"]
    for row in reveal_step:
        assert sorted(row[3:].tolist()) == list(range(6))
        assert (row[:3] == -1).all()
    assert (result["token_ids"][:, :3] == token_ids[:, :3]).all()
    assert not (result["token_ids"] == MASK).any()


def test_blocks_complete_in_order(model):
    token_ids = canvas([[1, 20], [1, 30]], 8)
    for num_steps, block_length in ((8, 4), (4, 2)):
        reveal_step = fill(model, token_ids, num_steps=num_steps, block_length=block_length
        )["reveal_step"][:, 2:]
        blocks = reveal_step.reshape(2, 8 // block_length, block_length)
        assert (blocks[:, :-1].max(axis=2) < blocks[:, 1:].min(axis=2)).all()
        counts = np.stack([(reveal_step == s).sum(axis=1) for s in range(num_steps)], 1)
        expected = [count for _, count in reveal_schedule(8, num_steps, block_length)]
        assert (counts == expected).all()


def test_confidence_reveals_the_most_probable_proposal_from_the_previous_position(model):
    token_ids = canvas([[1, 20, 21], [1, 40, 41]], 5)
    proposals, confidence = proposals_and_confidence(model, token_ids)
    result = fill(model, token_ids, num_steps=5)
    for row in range(2):
        first = int(np.argmax(np.where(token_ids[row] == MASK, confidence[row], -1)))
        assert result["reveal_step"][row, first] == 0
        assert result["token_ids"][row, first] == proposals[row, first]


def test_unshifted_models_read_a_position_from_its_own_logits(backbone):
    model = DualLM(backbone, md_variant="unshifted")
    token_ids = canvas([[1, 20, 21]], 1)
    proposals, _ = proposals_and_confidence(model, token_ids, shifted=False)
    shifted_proposals, _ = proposals_and_confidence(model, token_ids, shifted=True)
    assert proposals[0, 3] != shifted_proposals[0, 3]
    assert fill(model, token_ids)["token_ids"][0, 3] == proposals[0, 3]
    assert fill(DualLM(backbone), token_ids)["token_ids"][0, 3] == shifted_proposals[0, 3]


def test_random_remasking_and_temperature_follow_the_seed(model):
    token_ids = canvas([[1, 20, 21]], 8)
    options = dict(num_steps=8, remasking="random", temperature=1.5)
    first = fill(model, token_ids, seed=3, **options)
    again = fill(model, token_ids, seed=3, **options)
    other = fill(model, token_ids, seed=4, **options)
    assert (first["reveal_step"] == again["reveal_step"]).all()
    assert (first["token_ids"] == again["token_ids"]).all()
    assert (first["reveal_step"] != other["reveal_step"]).any()


def test_md_generation_of_ragged_prompts_matches_one_prompt_at_a_time(model):
    prompts = [[1, 20, 21, 22], [1, 30]]
    batch = model.generate(prompts, max_new_tokens=4, stop_token_ids=None, decoder=MDDecoder(block_length=4, temperature=0.0))
    for prompt, row in zip(prompts, batch):
        alone = fill(model, canvas([prompt], 4))["token_ids"][0]
        assert row.tolist() == alone.tolist()
        assert row[: len(prompt)].tolist() == prompt and len(row) == len(prompt) + 4


def test_infilling_keeps_prefix_and_suffix_identical(model):
    prefixes, suffixes = [[1, 20, 21], [1, 30]], [[40, 41], [50, 51, 52]]
    filled = model.infill(prefixes, suffixes, span_length=4,
                          decoder=MDDecoder(block_length=2, num_steps=2, temperature=0.0))
    for prefix, suffix, row in zip(prefixes, suffixes, filled):
        assert len(row) == len(prefix) + 4 + len(suffix)  # exactly span_length filled
        assert row[: len(prefix)].tolist() == prefix
        assert row[len(prefix) + 4 :].tolist() == suffix
        span = row[len(prefix) : len(prefix) + 4]
        assert ((span >= 0) & (span < VOCABULARY_SIZE)).all()
        assert MASK not in span.tolist() and 3 not in span.tolist()  # no <mask>, no <pad>


def test_infilling_strings_keeps_their_bytes(backbone):
    keras.utils.set_random_seed(5)
    model = DualLM(
        tiny_backbone(vocabulary_size=272, max_sequence_length=32),
        tokenizer=ByteTokenizer(),
    )
    prefix, suffix = "Once upon ", " time, é!"
    argmax = MDDecoder(temperature=0.0)
    filled = model.infill(prefix, suffix, span_length=3, decoder=argmax)
    assert filled.startswith(prefix) and filled.endswith(suffix)
    # The same fill on token ids (greedy, so deterministic) spans exactly 3 tokens and
    # is what the string came from.
    tokenizer = model.tokenizer
    prefix_ids = [1, *np.asarray(tokenizer.tokenize(prefix)).tolist()]
    suffix_ids = np.asarray(tokenizer.tokenize(suffix)).tolist()
    row = model.infill(prefix_ids, suffix_ids, span_length=3, decoder=argmax)
    assert len(row) == len(prefix_ids) + 3 + len(suffix_ids)
    assert row[-len(suffix_ids) :].tolist() == suffix_ids
    span = row[len(prefix_ids) : -len(suffix_ids)].tolist()
    assert len(span) == 3
    kept = [token for token in span if token not in model.special_token_ids]
    middle = filled[len(prefix) : len(filled) - len(suffix)]
    expected_middle = np.asarray(tokenizer.detokenize(kept)).item() if kept else ""
    if isinstance(expected_middle, bytes):
        expected_middle = expected_middle.decode("utf-8", errors="replace")
    assert middle == expected_middle


def md(model, max_new_tokens=4, **options):
    return model.generate([[1, 20]], max_new_tokens=max_new_tokens, decoder=MDDecoder(**options))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: md(m, num_steps=0), "num_steps"),
        (lambda m: md(m, num_steps=5), "num_steps"),
        (lambda m: md(m, max_new_tokens=31), "max_sequence_length"),
        (lambda m: md(m, block_length=3), "block_length"),
        (lambda m: md(m, block_length=1, num_steps=2), "multiple of the number of blocks"),
        (lambda m: md(m, remasking="lowest"), "'lowest'"),
        (lambda m: md(m, temperature=-1.0), "temperature"),
        (lambda m: md(m, threshold=0.5, num_steps=2), "exclusive"),
        (lambda m: md(m, threshold=0.5, remasking="random"), "reveals by confidence"),
        (lambda m: m.infill([1, 20], [30], span_length=2, decoder="ar"), "an MDDecoder"),
        (lambda m: fill(m, np.array([[4, 20, 4]])), "Position 0"),
        (lambda m: fill(m, np.array([[1, 4, 4], [1, 20, 4]])), r"\[2, 1\]"),
        (lambda m: fill(m, np.array([[1, 20, 21]])), r"\[0\]"),
        (lambda m: fill(m, np.array([[1, 99, 4]])), "token id 99"),
        (lambda m: m.infill([1, 20], [[30]], span_length=2), "same kind"),
        (lambda m: m.infill([1, 20], [30], span_length=0), "span_length"),
        (lambda m: m.infill([1, 20], [], span_length=2), "suffix"),
    ],
)
def test_bad_md_input_raises_a_clear_error(model, call, message):
    with pytest.raises(ValueError, match=message):
        call(model)
