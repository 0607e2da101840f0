"""Corpus → split → tokenizer → packed rows → datasets, in one call."""

from dataclasses import dataclass
from pathlib import Path

from keras_dualobj.data import special_tokens
from keras_dualobj.data.bpe_tokenizer import train_bpe_tokenizer
from keras_dualobj.data.byte_tokenizer import ByteTokenizer
from keras_dualobj.data.corpus import load_corpus, split_train_validation
from keras_dualobj.data.document_tokenization import tokenize_documents
from keras_dualobj.data.packing import pack_documents
from keras_dualobj.data.pipeline import make_evaluation_dataset, make_training_dataset
from keras_dualobj.data.repetition import plan_repetition
from keras_dualobj.data.tokenizer_storage import load_tokenizer

TOKENIZER_CHOICES = ("bpe", "byte")


@dataclass(frozen=True)
class PreparedData:
    """Everything a training run needs from the data side.

    Attributes:
        tokenizer: the tokenizer layer (give it to `DualLM(..., tokenizer=)`
            so it is saved with the model).
        corpus_source: concrete source used (`"tfds"`, `"builtin"`, ...).
        corpus_origin: what exactly was read.
        train_rows: `PackedRows` of the whole training split.
        validation_rows: `PackedRows` of the held-out split, or `None`.
        plan: the `RepetitionPlan`.
        seed: the shuffling seed.
        start_step: first step the training dataset yields.
        train_dataset: `tf.data.Dataset` from `make_training_dataset`.
        validation_dataset: `tf.data.Dataset` or `None`.
    """

    tokenizer: object
    corpus_source: str
    corpus_origin: str
    train_rows: object
    validation_rows: object
    plan: object
    seed: int
    start_step: int
    train_dataset: object
    validation_dataset: object

    def fit_arguments(self):
        """`model.fit(**data.fit_arguments())`: dataset, epochs, steps, validation.

        Keras epochs then match data epochs (see
        `RepetitionPlan.fit_arguments`); needs `start_step` at an epoch
        boundary.
        """
        arguments = {
            "x": self.train_dataset,
            # The dataset is already reshuffled per epoch; Keras' own shuffle
            # does not apply to datasets and only warns.
            "shuffle": False,
            **self.plan.fit_arguments(self.start_step),
        }
        if self.validation_dataset is not None:
            arguments["validation_data"] = self.validation_dataset
        return arguments

    def describe(self):
        validation = (
            "no validation split"
            if self.validation_rows is None
            else f"validation: {self.validation_rows.num_rows:,} rows"
        )
        return (
            f"{self.corpus_source} ({self.corpus_origin}); tokenizer "
            f"{type(self.tokenizer).__name__} with {self.tokenizer.vocabulary_size():,} "
            f"ids; training split: {self.train_rows.num_rows:,} rows of "
            f"{self.train_rows.sequence_length} (+{self.train_rows.num_remainder_tokens} "
            f"remainder tokens left out); {validation}; {self.plan.describe()}"
        )


def _make_tokenizer(tokenizer, vocabulary_size, train_documents):
    if tokenizer == "byte":
        return ByteTokenizer()
    if tokenizer == "bpe":
        return train_bpe_tokenizer(train_documents, vocabulary_size)
    if isinstance(tokenizer, (str, Path)):
        if Path(tokenizer).is_dir():
            return load_tokenizer(tokenizer)
        raise ValueError(
            f"`tokenizer` must be one of {TOKENIZER_CHOICES}, a folder written by "
            f"`save_tokenizer`, or a tokenizer layer. Received: {str(tokenizer)!r}"
        )
    missing = [
        name
        for name in ("vocabulary_size", "tokenize", "detokenize", "bos_token_id")
        if not hasattr(tokenizer, name)
    ]
    if missing:
        raise TypeError(
            f"`tokenizer` object {type(tokenizer).__name__} lacks {missing}; pass one "
            f"of {TOKENIZER_CHOICES}, a saved tokenizer folder, or a tokenizer layer."
        )
    return tokenizer


def _load_splits(
    source, *, path, texts, train_split, validation_split, validation_fraction, verbose,
    corpus_arguments,
):
    """`(corpus, train_documents, validation_documents)`: TFDS's own validation split,
    else the last documents holding `validation_fraction` of the characters."""
    corpus = load_corpus(
        source,
        path=path,
        texts=texts,
        split=train_split if source in ("auto", "tfds") else None,
        verbose=verbose,
        **corpus_arguments,
    )
    if corpus.source == "tfds" and validation_split is not None:
        # The dataset is prepared by now: this reads it, no download.
        validation_documents = load_corpus(
            "tfds", split=validation_split, verbose=False, **corpus_arguments
        ).documents
        return corpus, corpus.documents, validation_documents
    train_documents, validation_documents = split_train_validation(
        corpus.documents, validation_fraction
    )
    return corpus, train_documents, validation_documents


def prepare_data(
    source="auto",
    *,
    sequence_length=128,
    batch_size=32,
    tokenizer="bpe",
    vocabulary_size=2048,
    repetitions=1,
    unique_tokens=None,
    unique_fraction=None,
    token_budget=None,
    fit_repetitions=False,
    validation_fraction=0.1,
    seed=0,
    start_step=0,
    append_eos=False,
    path=None,
    texts=None,
    tfds_name="tiny_shakespeare",
    train_split="train",
    validation_split="validation",
    data_dir=None,
    local_copy=None,
    text_field="text",
    encoding="utf-8",
    document_split="paragraphs",
    chunk_characters=None,
    reachability_timeout_seconds=3.0,
    verbose=True,
    describe=True,
):
    """Loads a corpus and returns the training and validation datasets.

    Steps: `load_corpus` (prints the source) → hold out validation documents
    (TFDS: the dataset's `validation_split`; other sources: the last documents
    holding `validation_fraction` of the characters) → tokenizer (trained on
    the training documents only) → `pack_documents` per split →
    `plan_repetition` → `make_training_dataset` / `make_evaluation_dataset`.
    Validation rows come from documents that are never in the training split.

    Args:
        source: see `load_corpus` (`"auto"`, `"tfds"`, `"text"`, `"jsonl"`,
            `"builtin"`, `"iterable"`).
        sequence_length: tokens per row, >= 2.
        batch_size: rows per step.
        tokenizer: `"bpe"` (trained here, `vocabulary_size` ids), `"byte"`
            (272 ids), a folder from `save_tokenizer`, or a tokenizer layer.
        vocabulary_size: BPE vocabulary size.
        repetitions, unique_tokens, unique_fraction, token_budget,
            fit_repetitions: see `plan_repetition` (U defaults to the whole
            training split).
        validation_fraction: held-out share of characters for sources without
            splits (or for TFDS with `validation_split=None`); 0 for none.
        seed: shuffling seed.
        start_step: resume the training stream at this step.
        append_eos: also end every document with `</s>`.
        path, texts, tfds_name, data_dir, local_copy, text_field, encoding,
            document_split, chunk_characters, reachability_timeout_seconds:
            passed to `load_corpus`.
        train_split, validation_split: TFDS splits.
        verbose: print what was loaded and planned.
        describe: with `verbose`, end with the line of `PreparedData.describe()`
            (tokenizer, splits, plan); `False` leaves it to a caller that
            replaces the plan (the repetition study).

    Returns:
        A `PreparedData`.

    Example:

    >>> data = prepare_data("builtin", tokenizer="byte", sequence_length=64,
    ...                     batch_size=16, unique_tokens=20_000, repetitions=2,
    ...                     verbose=False)
    >>> data.plan.steps_per_epoch, data.plan.total_steps
    (19, 38)
    >>> sorted(data.train_dataset.element_spec)
    ['document_ids', 'token_ids']
    """
    corpus, train_documents, validation_documents = _load_splits(
        source,
        path=path,
        texts=texts,
        train_split=train_split,
        validation_split=validation_split,
        validation_fraction=validation_fraction,
        verbose=verbose,
        corpus_arguments=dict(
            tfds_name=tfds_name,
            data_dir=data_dir,
            local_copy=local_copy,
            text_field=text_field,
            encoding=encoding,
            document_split=document_split,
            chunk_characters=chunk_characters,
            reachability_timeout_seconds=reachability_timeout_seconds,
        ),
    )
    tokenizer = _make_tokenizer(tokenizer, vocabulary_size, train_documents)
    bos_token_id = getattr(tokenizer, "bos_token_id", special_tokens.BOS_TOKEN_ID)
    eos_token_id = (
        getattr(tokenizer, "eos_token_id", special_tokens.EOS_TOKEN_ID)
        if append_eos
        else None
    )

    def pack(documents, name):
        try:
            return pack_documents(
                tokenize_documents(tokenizer, documents),
                sequence_length,
                bos_token_id=bos_token_id,
                eos_token_id=eos_token_id,
            )
        except ValueError as error:
            raise ValueError(f"{name} split: {error}") from error

    train_rows = pack(train_documents, "Training")
    validation_rows = pack(validation_documents, "Validation") if validation_documents else None
    plan = plan_repetition(
        train_rows,
        batch_size=batch_size,
        repetitions=repetitions,
        unique_tokens=unique_tokens,
        unique_fraction=unique_fraction,
        token_budget=token_budget,
        fit_repetitions=fit_repetitions,
    )
    if verbose and plan.requested_repetitions is not None:
        print(
            f"[keras_dualobj.data] note: the {corpus.source} corpus holds "
            f"{plan.corpus_tokens:,} training tokens, fewer than the budget of "
            f"{token_budget:,} tokens needs at R = {plan.requested_repetitions}; "
            f"repeating {plan.unique_tokens:,} unique tokens R = {plan.repetitions} "
            "times instead (give --token-budget / --repetitions to choose)."
        )
    data = PreparedData(
        tokenizer=tokenizer,
        corpus_source=corpus.source,
        corpus_origin=corpus.origin,
        train_rows=train_rows,
        validation_rows=validation_rows,
        plan=plan,
        seed=seed,
        start_step=start_step,
        train_dataset=make_training_dataset(
            train_rows, plan, seed=seed, start_step=start_step
        ),
        validation_dataset=None
        if validation_rows is None
        else make_evaluation_dataset(validation_rows, batch_size),
    )
    if verbose and describe:
        print(f"[keras_dualobj.data] {data.describe()}")
    return data
