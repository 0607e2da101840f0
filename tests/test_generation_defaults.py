"""`generate()`'s defaults: what they resolve to, and readable text from a trained byte model.

The defaults were chosen by `benchmarks/generation_defaults.py`; here a tiny byte-level
model trained for a few seconds checks the failure they replace (MD decoding in one
block filled the canvas with spaces), and the option resolution checks one home for
them (`generate` and the summary sample of `keras-dualobj train`).
"""

import numpy as np
import pytest

from keras_dualobj.data import ByteTokenizer
from keras_dualobj.decoders import ARDecoder
from keras_dualobj.decoders import MDDecoder
from keras_dualobj.decoders import SpeculativeDecoder
from keras_dualobj.decoders import shortest_block_length
from keras_dualobj.decoders.signatures import decoder_arguments

from conftest import prose_text
from conftest import tiny_backbone
from conftest import tiny_dual_lm

SEQUENCE_LENGTH = 64


def prose_rows(tokenizer, num_rows):
    """Rows of `<s>` + 63 bytes of prose, in order."""
    ids = np.asarray(tokenizer.tokenize(prose_text()[: num_rows * SEQUENCE_LENGTH]))
    ids = ids[: len(ids) // (SEQUENCE_LENGTH - 1) * (SEQUENCE_LENGTH - 1)]
    rows = ids.reshape(-1, SEQUENCE_LENGTH - 1)[:num_rows]
    return np.concatenate([np.ones((len(rows), 1), rows.dtype), rows], axis=1).astype("int32")


@pytest.fixture(scope="module")
def byte_model():
    """A 2 x 32 byte-level model, one epoch over 1,024 rows of prose (3-11 s)."""
    tokenizer = ByteTokenizer()
    model = tiny_dual_lm(
        tiny_backbone(vocabulary_size=272), tokenizer=tokenizer, learning_rate=3e-3
    )
    model.fit(prose_rows(tokenizer, 1024), batch_size=16, epochs=1, verbose=0)
    return model


def test_md_defaults_write_letters_not_a_canvas_of_spaces(byte_model):
    held_out = prose_rows(byte_model.tokenizer, 1100)[-8:]
    prompts = [row[:16].tolist() for row in held_out]
    outputs = byte_model.generate(prompts, max_new_tokens=32, strip_prompt=True, stop_token_ids=None, decoder=MDDecoder(seed=0))
    texts = [byte_model.tokenizer.detokenize([int(t) for t in row]) for row in outputs]
    blank = [text for text in texts if not text.strip()]
    letters = np.mean([sum(c.isalpha() for c in text) / len(text) for text in texts])
    # One block at temperature 0 (the old default) left 6-8 of the 8 rows blank, 1% letters.
    assert len(blank) <= 2 and letters > 0.2, (len(blank), letters, texts)


@pytest.mark.backend_independent
def test_the_defaults_live_on_the_decoder_classes():
    ar = ARDecoder()
    assert (ar.sampler, ar.temperature, ar.use_cache) == ("top_k", 0.5, True)
    assert ar.make_sampler().temperature == 0.5 and ar.make_sampler().k == 5
    md = MDDecoder()
    assert (md.remasking, md.temperature, md.threshold, md.prefix_cache) == (
        "confidence", 0.5, None, False)
    assert md.plan(64)[0] == 1  # one token per step, left to right
    assert MDDecoder(num_steps=16).plan(64)[0] == 4
    assert MDDecoder(block_length=64).plan(64)[0] == 64
    assert MDDecoder(threshold=0.9).plan(64) == (64, None)  # τ decides the steps: one block
    speculative = SpeculativeDecoder()
    assert speculative.temperature == 0.0  # exactly the AR face's greedy output
    assert speculative.draft_mode == "cached"  # the one default: kernel and decoder agree


@pytest.mark.backend_independent
def test_the_flags_read_the_signatures_the_classes_have():
    import inspect

    from keras_dualobj.decoders import DECODERS

    for name, arguments in decoder_arguments().items():
        parameters = list(inspect.signature(DECODERS[name].__init__).parameters.values())[1:]
        assert arguments == [(p.name, p.default) for p in parameters]
        decoder = DECODERS[name]()
        assert type(decoder).from_config(decoder.get_config()).get_config() == decoder.get_config()


@pytest.mark.backend_independent
def test_shortest_block_length_lets_every_block_have_the_same_steps():
    for num_new_tokens in (1, 5, 12, 64):
        for num_steps in range(1, num_new_tokens + 1):
            block_length = shortest_block_length(num_new_tokens, num_steps)
            num_blocks = num_new_tokens // block_length
            assert num_new_tokens % block_length == 0 and num_steps % num_blocks == 0
            assert all(
                num_new_tokens % shorter or num_steps % (num_new_tokens // shorter)
                for shorter in range(1, block_length)
            )
    with pytest.raises(ValueError, match="num_steps.*received num_steps=0"):
        shortest_block_length(8, 0)
