"""Text corpora: TFDS, local files, iterables and a built-in offline corpus.

Every source gives a `Corpus`: a tuple of documents (strings) plus a record of
where they came from. `load_corpus` prints that record, so a log always says
which data a run used.
"""

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_dualobj.data import tfds_source
from keras_dualobj.data.document_split import split_documents, validate_document_split

SOURCES = ("auto", "tfds", "text", "jsonl", "builtin", "iterable")

# Where `auto` finds a configured local copy of the TFDS raw download (a file
# such as tinyshakespeare/input.txt, or a folder of raw files).
LOCAL_COPY_ENV_VAR = "KERAS_DUALOBJ_TFDS_LOCAL_COPY"

BUILTIN_ORIGIN = "CPython's pydoc_data.topics (the language reference)"


@dataclass(frozen=True)
class Corpus:
    """Documents and where they came from.

    Attributes:
        documents: tuple of `str`, in source order.
        source: the concrete source used: `"tfds"`, `"text"`, `"jsonl"`,
            `"builtin"` or `"iterable"` (never `"auto"`).
        origin: what exactly was read, e.g.
            `"tfds:tiny_shakespeare[train] built offline from .../input.txt"`.

    Example:

    >>> corpus = load_corpus("iterable", texts=["a\\n\\nb"], verbose=False)
    >>> corpus.documents, corpus.source, corpus.num_characters
    (('a', 'b'), 'iterable', 2)
    """

    documents: tuple
    source: str
    origin: str

    @property
    def num_characters(self):
        return sum(len(d) for d in self.documents)

    def describe(self):
        """One line naming the source, documents and characters."""
        return (
            f"corpus source: {self.source} ({self.origin}); "
            f"{len(self.documents):,} documents, {self.num_characters:,} characters"
        )


@dataclass(frozen=True)
class SourceChoice:
    """What `choose_source` picked and why.

    Attributes:
        source: the concrete source (`"tfds"`, `"builtin"`, ...).
        reason: a sentence explaining the choice (printed by `load_corpus`).
        local_copy: the local copy TFDS builds from, or `None`.
    """

    source: str
    reason: str
    local_copy: str | None = None


def choose_source(
    source="auto",
    *,
    tfds_name=tfds_source.DEFAULT_TFDS_NAME,
    data_dir=None,
    local_copy=None,
    reachability_timeout_seconds=3.0,
):
    """Resolves `source="auto"` to a concrete source without ever hanging.

    `auto` tries, in order:

    1. a configured local copy of the TFDS raw download (`local_copy`, else
       the `KERAS_DUALOBJ_TFDS_LOCAL_COPY` environment variable): TFDS builds
       offline from it;
    2. the TFDS dataset already prepared in `data_dir`;
    3. TFDS with a download, if its download host accepts a connection within
       `reachability_timeout_seconds`;
    4. the built-in corpus (`pydoc_data.topics`, present in every CPython).

    Other sources are returned as given (after validation).

    Example:

    >>> choose_source("builtin").source
    'builtin'
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}. Received: {source!r}")
    if local_copy is None and source in ("auto", "tfds"):
        local_copy = os.environ.get(LOCAL_COPY_ENV_VAR) or None
    if source != "auto":
        return SourceChoice(source, f"source={source!r} requested", local_copy)
    if local_copy is not None:
        if not Path(local_copy).expanduser().exists():
            raise FileNotFoundError(
                f"The configured local copy {local_copy!r} (argument `local_copy` or "
                f"${LOCAL_COPY_ENV_VAR}) does not exist. Point it at the raw TFDS "
                "download (e.g. tinyshakespeare/input.txt) or unset it."
            )
        return SourceChoice(
            "tfds", f"auto: configured local copy {local_copy}", str(local_copy)
        )
    builder = tfds_source.tfds_builder(tfds_name, data_dir)
    if builder.is_prepared():
        return SourceChoice("tfds", f"auto: TFDS {tfds_name} already prepared")
    hosts = tfds_source.download_hosts(builder)
    unreachable = [
        host
        for host in hosts
        if not tfds_source.is_host_reachable(
            host, timeout_seconds=reachability_timeout_seconds
        )
    ]
    if hosts and not unreachable:
        return SourceChoice("tfds", f"auto: TFDS download host {hosts} reachable")
    return SourceChoice(
        "builtin",
        f"auto: no local copy configured, TFDS {tfds_name} not prepared and its "
        f"download host {unreachable or hosts} not reachable within "
        f"{reachability_timeout_seconds} s",
    )


def load_corpus(
    source="auto",
    *,
    path=None,
    texts=None,
    tfds_name=tfds_source.DEFAULT_TFDS_NAME,
    split=None,
    data_dir=None,
    local_copy=None,
    text_field="text",
    encoding="utf-8",
    document_split="paragraphs",
    chunk_characters=None,
    reachability_timeout_seconds=3.0,
    verbose=True,
):
    """Loads documents from a source and prints which source was used.

    Sources:

    - `"tfds"`: TFDS dataset `tfds_name` (default `tiny_shakespeare`), split
      `split` (default `"train"`; any TFDS split string). With `local_copy`
      (or `$KERAS_DUALOBJ_TFDS_LOCAL_COPY`) it builds offline from that copy of
      the raw download; without, it downloads only if the host is reachable
      (else a `ConnectionError`, never a hang).
    - `"text"`: `path` is a `.txt` file or a folder (all `*.txt` below it, in
      sorted path order).
    - `"jsonl"`: `path` is a JSON Lines file (or a folder of `*.jsonl`); each
      line is an object whose `text_field` is a string.
    - `"iterable"`: `texts` is an iterable of strings.
    - `"builtin"`: CPython's `pydoc_data.topics`, always available offline.
    - `"auto"`: see `choose_source`; falls back to `"builtin"`.

    Each raw text (file, TFDS example, JSON line, string, pydoc topic) is cut
    into documents by `document_split` (see `split_documents`).

    Args:
        source: one of the above.
        path: file or folder for `"text"` / `"jsonl"`.
        texts: iterable of `str` for `"iterable"`.
        tfds_name: TFDS dataset name.
        split: TFDS split; only for TFDS (with `"auto"` it applies if TFDS is
            chosen, otherwise the whole corpus is returned).
        data_dir: TFDS data directory (where it is built; must be writable).
        local_copy: local copy of the TFDS raw download.
        text_field: the text field of TFDS examples / JSON lines.
        encoding: encoding of local files.
        document_split: `"paragraphs"`, `"lines"`, `"none"` or `"chunks"`.
        chunk_characters: chunk size for `"chunks"`.
        reachability_timeout_seconds: how long `auto`/`tfds` wait for the
            download host.
        verbose: print the source line.

    Returns:
        A `Corpus`.

    Example:

    >>> corpus = load_corpus("builtin", verbose=False)
    >>> corpus.source, len(corpus.documents) > 1000
    ('builtin', True)
    """
    validate_document_split(document_split, chunk_characters)
    if path is not None and source not in ("text", "jsonl"):
        raise ValueError(
            f"`path` only applies to sources 'text' and 'jsonl'. Received: "
            f"path={str(path)!r} with source={source!r}"
        )
    if source in ("text", "jsonl") and path is None:
        raise ValueError(f"source={source!r} needs `path` (a file or folder).")
    if texts is not None and source != "iterable":
        raise ValueError(
            f"`texts` only applies to source='iterable'. Received source={source!r}"
        )
    if split is not None and source not in ("auto", "tfds"):
        raise ValueError(
            f"`split` only applies to TFDS sources; source={source!r} has no "
            f"splits. Received: split={split!r}. Use `split_train_validation`."
        )
    choice = choose_source(
        source,
        tfds_name=tfds_name,
        data_dir=data_dir,
        local_copy=local_copy,
        reachability_timeout_seconds=reachability_timeout_seconds,
    )
    if verbose and source == "auto":
        print(f"[keras_dualobj.data] {choice.reason}")
    if choice.source == "tfds":
        try:
            raw_texts, origin = _read_tfds(
                choice, tfds_name, split or "train", data_dir, text_field,
                reachability_timeout_seconds,
            )
        except Exception as error:
            # `auto` promised a run: a download that fails after the host
            # answered falls back to the built-in corpus, loudly. A configured
            # local copy that fails is a real error and propagates.
            if source != "auto" or choice.local_copy is not None:
                raise
            choice = SourceChoice("builtin", f"auto: TFDS failed ({error!r})")
            if verbose:
                print(f"[keras_dualobj.data] {choice.reason}; using the built-in corpus")
            raw_texts, origin = _read_builtin()
    elif choice.source == "text":
        raw_texts, origin = _read_text_files(path, encoding)
    elif choice.source == "jsonl":
        raw_texts, origin = _read_jsonl_files(path, encoding, text_field)
    elif choice.source == "iterable":
        raw_texts, origin = _read_iterable(texts)
    else:
        raw_texts, origin = _read_builtin()

    documents = []
    for text in raw_texts:
        documents.extend(split_documents(text, document_split, chunk_characters=chunk_characters))
    if not documents:
        raise ValueError(
            f"The corpus from {origin} holds no text: 0 non-empty documents "
            f"(document_split={document_split!r})."
        )
    corpus = Corpus(tuple(documents), choice.source, origin)
    if verbose:
        print(f"[keras_dualobj.data] {corpus.describe()}")
    return corpus


def split_train_validation(documents, validation_fraction):
    """Holds out the last documents, about `validation_fraction` of the characters.

    The validation part is the shortest tail of `documents` holding at least
    `validation_fraction` of all characters; the training part is everything
    before it. Deterministic; no document is in both or neither.

    Args:
        documents: sequence of `str`.
        validation_fraction: float in [0, 1); 0 gives an empty validation part.

    Returns:
        `(train_documents, validation_documents)`, two tuples.

    Example:

    >>> split_train_validation(["aaaa", "bb", "c", "d"], 0.25)
    (('aaaa', 'bb'), ('c', 'd'))
    """
    if isinstance(validation_fraction, bool) or not isinstance(
        validation_fraction, (int, float)
    ) or not 0 <= validation_fraction < 1:
        raise ValueError(
            "`validation_fraction` must be a number in [0, 1). "
            f"Received: {validation_fraction!r}"
        )
    documents = tuple(documents)
    if validation_fraction == 0:
        return documents, ()
    lengths = np.array([len(d) for d in documents], dtype=np.int64)
    tail_characters = np.cumsum(lengths[::-1])[::-1]  # characters from i to the end
    wanted = validation_fraction * lengths.sum()
    cut = int(np.flatnonzero(tail_characters >= wanted)[-1]) if len(documents) else 0
    if cut < 1:
        raise ValueError(
            f"Cannot hold out {validation_fraction:.0%} of the characters and keep "
            f"training documents: the corpus has {len(documents)} document(s) "
            f"({int(lengths.sum())} characters). Use a finer `document_split` or "
            "a smaller `validation_fraction`."
        )
    return documents[:cut], documents[cut:]


# --- readers --------------------------------------------------------------


def _read_tfds(choice, tfds_name, split, data_dir, text_field, timeout_seconds):
    builder = tfds_source.tfds_builder(tfds_name, data_dir)
    if choice.local_copy is None and not builder.is_prepared():
        hosts = tfds_source.download_hosts(builder)
        unreachable = [
            h for h in hosts
            if not tfds_source.is_host_reachable(h, timeout_seconds=timeout_seconds)
        ]
        if unreachable:
            raise ConnectionError(
                f"TFDS {tfds_name!r} is not prepared in {builder.data_dir} and its "
                f"download host {unreachable} is not reachable within "
                f"{timeout_seconds} s. Pass `local_copy=` (the raw download, e.g. "
                f"tinyshakespeare/input.txt) or set ${LOCAL_COPY_ENV_VAR}."
            )
    builder = tfds_source.build_tfds_dataset(
        tfds_name, data_dir=data_dir, local_copy=choice.local_copy
    )
    texts = tfds_source.read_tfds_texts(builder, split, text_field)
    how = (
        f" built offline from {choice.local_copy}" if choice.local_copy else ""
    )
    return texts, f"tfds:{tfds_name}[{split}]{how}"


def _files_under(path, suffix):
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"Corpus path {str(path)!r} does not exist. Pass a {suffix} file or a "
            f"folder holding {suffix} files."
        )
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    if not files:
        raise ValueError(
            f"Folder {str(path)!r} holds no {suffix} files; pass a {suffix} file "
            f"or a folder with {suffix} files."
        )
    return files


def _read_file(file, encoding):
    try:
        return file.read_text(encoding=encoding)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"Cannot decode {str(file)!r} as {encoding!r}: byte "
            f"{error.object[error.start:error.start + 1]!r} at offset {error.start} "
            f"({error.reason}). Pass the file's encoding, e.g. encoding='latin-1' "
            "(any codec name Python accepts), or convert the file to UTF-8."
        ) from error
    except LookupError as error:
        raise ValueError(
            f"Unknown encoding {encoding!r}: pass a codec name Python accepts, "
            "e.g. 'utf-8' or 'latin-1'."
        ) from error


def _read_text_files(path, encoding):
    files = _files_under(path, ".txt")
    texts = [_read_file(f, encoding) for f in files]
    origin = f"text:{path}" if len(files) == 1 else f"text:{path} ({len(files)} files)"
    return texts, origin


def _read_jsonl_files(path, encoding, text_field):
    files = _files_under(path, ".jsonl")
    texts = []
    for file in files:
        for line_number, line in enumerate(_read_file(file, encoding).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{file}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{where} is not valid JSON: {error.msg}.") from error
            if not isinstance(record, dict) or text_field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise ValueError(
                    f"{where} has no {text_field!r} field (found {keys}). Each line "
                    f"must be an object with a string {text_field!r}; pass "
                    "`text_field=` to read another field."
                )
            if not isinstance(record[text_field], str):
                raise TypeError(
                    f"{where}: field {text_field!r} must be a string. Received "
                    f"{type(record[text_field]).__name__}."
                )
            texts.append(record[text_field])
    origin = f"jsonl:{path}" if len(files) == 1 else f"jsonl:{path} ({len(files)} files)"
    return texts, origin


def _read_iterable(texts):
    if texts is None:
        raise ValueError("source='iterable' needs `texts`, an iterable of str.")
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise TypeError(
            "`texts` must be an iterable of str (e.g. a list of documents), not "
            f"{type(texts).__name__}."
        )
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"`texts[{index}]` must be a str. Received {type(text).__name__}: "
                f"{text!r:.80}"
            )
    return texts, f"iterable of {len(texts)} strings"


def _read_builtin():
    from pydoc_data import topics

    return [topics.topics[key] for key in sorted(topics.topics)], BUILTIN_ORIGIN
