"""Data for dual-objective training: corpora, tokenizers, packing, repetition, tf.data.

The usual entry point is `prepare_data`; the pieces it chains are public too.
"""

from keras_dualobj.data import special_tokens
from keras_dualobj.data.bpe_tokenizer import BytePairTokenizer, train_bpe_tokenizer
from keras_dualobj.data.byte_tokenizer import ByteTokenizer
from keras_dualobj.data.corpus import (
    LOCAL_COPY_ENV_VAR,
    SOURCES,
    Corpus,
    SourceChoice,
    choose_source,
    load_corpus,
    split_train_validation,
)
from keras_dualobj.data.document_split import DOCUMENT_SPLIT_MODES, split_documents
from keras_dualobj.data.document_tokenization import tokenize_documents
from keras_dualobj.data.json_bpe_tokenizer import TokenizerJsonBytePairTokenizer
from keras_dualobj.data.packing import PackedRows, pack_documents, unpack_rows
from keras_dualobj.data.pipeline import (
    epoch_row_order,
    make_evaluation_dataset,
    make_training_dataset,
    training_row_order,
)
from keras_dualobj.data.prepare import PreparedData, prepare_data
from keras_dualobj.data.repetition import RepetitionPlan, plan_repetition, repetitions_to_fit
from keras_dualobj.data.tfds_source import build_tfds_dataset, is_host_reachable
from keras_dualobj.data.tokenizer_storage import load_tokenizer, save_tokenizer

__all__ = [
    "DOCUMENT_SPLIT_MODES",
    "LOCAL_COPY_ENV_VAR",
    "SOURCES",
    "BytePairTokenizer",
    "ByteTokenizer",
    "Corpus",
    "PackedRows",
    "PreparedData",
    "RepetitionPlan",
    "SourceChoice",
    "TokenizerJsonBytePairTokenizer",
    "build_tfds_dataset",
    "choose_source",
    "epoch_row_order",
    "is_host_reachable",
    "load_corpus",
    "load_tokenizer",
    "make_evaluation_dataset",
    "make_training_dataset",
    "pack_documents",
    "plan_repetition",
    "repetitions_to_fit",
    "prepare_data",
    "save_tokenizer",
    "special_tokens",
    "split_documents",
    "split_train_validation",
    "tokenize_documents",
    "train_bpe_tokenizer",
    "training_row_order",
    "unpack_rows",
]
