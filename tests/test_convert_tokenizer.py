"""A reference-style tokenizer.json runs in our tokenizer layer with the same ids as `tokenizers`."""

import json

import keras
import numpy as np
import pytest
from pydoc_data.topics import topics
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from tokenizers import processors, trainers

from keras_dualobj import DualLM
from keras_dualobj.convert import load_reference_tokenizer
from keras_dualobj.data import TokenizerJsonBytePairTokenizer
from keras_dualobj.data import load_tokenizer, save_tokenizer

from conftest import tiny_backbone

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<mask>"] + [f"<special_{i}>" for i in range(11)]
TEXTS = [
    "The import statement\n  binds names.  \nTrailing spaces  \n\nand tabs\t!",
    "Unicode: café, naïve, Ωmega — 12345 numbers; emoji 🙂.",
    "x = [i ** 2 for i in range(10)]  # comment",
    "",
]


def reference_style_tokenizer(vocabulary_size=600, specials=SPECIALS):
    """A tiny byte-level BPE with the reference file's pipeline parts.

    A leading space and newline handling in the normaliser, a split regex before
    the byte-level step, `<s>` added by the post-processor, a decoder that strips
    the leading space.
    """
    hf = Tokenizer(models.BPE(unk_token="<unk>"))
    hf.normalizer = normalizers.Sequence(
        [
            normalizers.Prepend(" "),
            normalizers.NFC(),
            normalizers.Replace(Regex("\n"), "\n "),
            normalizers.Replace(Regex(" *\n"), "\n"),
        ]
    )
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r" ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s*[\r\n]+|\s+"), "isolated"
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    hf.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    hf.decoder = decoders.Sequence(
        [decoders.ByteLevel(), decoders.Strip(" ", 1, 0), decoders.Replace("\n ", "\n")]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocabulary_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    documents = list(topics.values())[:40]
    hf.train_from_iterator(documents, trainer)
    return hf


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    hf = reference_style_tokenizer()
    hf.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json", Tokenizer.from_file(str(folder / "tokenizer.json"))


def test_ids_and_decoding_equal_the_tokenizers_library(tokenizer_files):
    path, hf = tokenizer_files
    tokenizer = load_reference_tokenizer(path)
    assert tokenizer.vocabulary_size() == hf.get_vocab_size() == 600
    documents = TEXTS + list(topics.values())[40:45]
    for text in documents:
        expected = hf.encode(text, add_special_tokens=False).ids
        ids = tokenizer.tokenize(text)
        assert ids.tolist() == expected
        assert tokenizer.detokenize(ids) == hf.decode(expected, skip_special_tokens=False)
    batch = tokenizer.tokenize_batch_to_arrays(documents)
    assert [a.tolist() for a in batch] == [e.ids for e in hf.encode_batch(documents, add_special_tokens=False)]
    # The normaliser's leading space is stripped again, so plain text round-trips.
    assert tokenizer.detokenize(tokenizer.tokenize(TEXTS[2])) == TEXTS[2]
    assert (tokenizer.bos_token_id, tokenizer.mask_token_id, tokenizer.pad_token_id) == (1, 4, 3)
    assert tokenizer.id_to_token(5) == "<special_0>"


def test_the_tokenizer_survives_saving_alone_and_inside_a_model(tokenizer_files, tmp_path):
    path, hf = tokenizer_files
    tokenizer = TokenizerJsonBytePairTokenizer(path)
    text = TEXTS[1]
    save_tokenizer(tokenizer, tmp_path / "alone")
    assert json.loads((tmp_path / "alone" / "tokenizer.json").read_text())["model"]["type"] == "BPE"
    assert load_tokenizer(tmp_path / "alone").tokenize(text).tolist() == hf.encode(
        text, add_special_tokens=False
    ).ids
    backbone = tiny_backbone(
        vocabulary_size=600, num_layers=1, hidden_dim=16, intermediate_dim=32, max_sequence_length=2048,
    )
    DualLM(backbone, tokenizer=tokenizer).save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras").tokenizer
    assert type(loaded) is TokenizerJsonBytePairTokenizer
    assert np.array_equal(loaded.tokenize(text), tokenizer.tokenize(text))
    assert loaded.detokenize(loaded.tokenize(text)) == hf.decode(
        hf.encode(text, add_special_tokens=False).ids
    )


def test_a_tokenizer_without_our_special_ids_is_refused(tmp_path):
    swapped = ["<s>", "<unk>"] + SPECIALS[2:]
    path = tmp_path / "tokenizer.json"
    reference_style_tokenizer(400, swapped).save(str(path))
    with pytest.raises(ValueError, match=r"'<unk>': 1.*'<s>': 0"):
        load_reference_tokenizer(path)
    with pytest.raises(FileNotFoundError, match="No tokenizer file"):
        load_reference_tokenizer(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="sequence_length=8"):
        TokenizerJsonBytePairTokenizer(path, sequence_length=8)
