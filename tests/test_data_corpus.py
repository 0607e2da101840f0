"""Corpus sources: TFDS offline, local text/JSONL, iterables, built-in, `auto`."""

import json
import socket

import pytest

from keras_dualobj.data import (
    LOCAL_COPY_ENV_VAR,
    choose_source,
    load_corpus,
    split_documents,
    split_train_validation,
    tfds_source,
)

# NumPy, files and text only: no model code, Keras op or layer (tests/conftest.py).
pytestmark = pytest.mark.backend_independent

TFDS_NAME = "tiny_shakespeare"


PROSE_TFDS_NAME = "keras_dualobj_test_prose"


def _define_prose_builder():
    """A TFDS dataset defined here, laid out like tiny_shakespeare (one text file
    in the manual directory, cut at 90% / 95% of its characters into train /
    validation / test). TFDS's advice for code that must not download: test
    with a builder of your own; the real tiny_shakespeare checksum is tested
    separately (`integration_tests/`, with the real file)."""
    import tensorflow_datasets as tfds

    class KerasDualobjTestProse(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        MANUAL_DOWNLOAD_INSTRUCTIONS = "Place input.txt in the manual directory."

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()})
            )

        def _split_generators(self, dl_manager):
            text = (dl_manager.manual_dir / "input.txt").read_text(encoding="utf-8")
            first, second = int(len(text) * 0.9), int(len(text) * 0.95)
            parts = {"train": text[:first], "validation": text[first:second], "test": text[second:]}
            return {name: self._generate_examples(part) for name, part in parts.items()}

        def _generate_examples(self, text):
            yield 0, {"text": text}

    return KerasDualobjTestProse


_define_prose_builder()


@pytest.fixture(scope="module")
def prose_copy(tmp_path_factory, prose_file):
    """A raw download folder for the test dataset (what a user points `local_copy` at)."""
    folder = tmp_path_factory.mktemp("raw")
    (folder / "input.txt").write_bytes(prose_file.read_bytes())
    return folder


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket or ask about reachability fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(tfds_source, "is_host_reachable", refuse)
    monkeypatch.delenv(LOCAL_COPY_ENV_VAR, raising=False)


@pytest.fixture(scope="module")
def offline_tfds_dir(tmp_path_factory, prose_copy):
    """The test dataset built once per module, offline, in a temporary data_dir."""
    data_dir = tmp_path_factory.mktemp("tfds")
    with pytest.MonkeyPatch.context() as patch:
        def refuse(*args, **kwargs):
            raise AssertionError(f"network access attempted: {args!r}")

        patch.setattr(socket, "create_connection", refuse)
        patch.setattr(socket.socket, "connect", refuse)
        tfds_source.build_tfds_dataset(
            PROSE_TFDS_NAME, data_dir=data_dir, local_copy=prose_copy
        )
    return data_dir


# --- TFDS -------------------------------------------------------------------


def test_tfds_builds_offline_and_matches_the_local_text(
    offline_tfds_dir, prose_copy, no_network
):
    text = (prose_copy / "input.txt").read_text(encoding="utf-8")
    raw_splits = {
        split: load_corpus(
            "tfds", tfds_name=PROSE_TFDS_NAME, split=split, data_dir=offline_tfds_dir,
            document_split="none", verbose=False,
        ).documents
        for split in ("train", "validation", "test")
    }
    assert "".join(raw_splits["train"] + raw_splits["validation"] + raw_splits["test"]) == text
    cut = int(len(text) * 0.9)
    assert raw_splits["train"] == (text[:cut],)

    tfds_train = load_corpus(
        "tfds", tfds_name=PROSE_TFDS_NAME, split="train", data_dir=offline_tfds_dir,
        verbose=False,
    )
    local_train = load_corpus("iterable", texts=[text[:cut]], verbose=False)
    assert tfds_train.documents == local_train.documents
    assert len(tfds_train.documents) > 1000
    whole_file = load_corpus("text", path=prose_copy / "input.txt", verbose=False)
    assert whole_file.documents[: len(tfds_train.documents) - 1] == tfds_train.documents[:-1]


def test_a_local_copy_under_another_name_is_linked_under_the_expected_name(tmp_path):
    # tiny_shakespeare's registered raw file is input.txt; a copy named otherwise
    # (a read-only shared copy, say) is linked under that name in data_dir.
    renamed = tmp_path / "my_shakespeare.txt"
    renamed.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    builder = tfds_source.tfds_builder(TFDS_NAME, tmp_path / "tfds")
    manual_dir = tfds_source._manual_dir_for(renamed, builder, tmp_path / "tfds")
    assert (manual_dir / "input.txt").read_bytes() == renamed.read_bytes()
    assert manual_dir.is_relative_to(tmp_path / "tfds")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        tfds_source._manual_dir_for(tmp_path / "missing.txt", builder, tmp_path / "tfds")


def test_tfds_rejects_a_local_copy_with_the_wrong_content(tmp_path, no_network):
    wrong = tmp_path / "input.txt"
    wrong.write_text("not shakespeare\n")
    with pytest.raises(Exception, match="checksum"):
        load_corpus("tfds", data_dir=tmp_path / "tfds", local_copy=wrong, verbose=False)


def test_tfds_without_local_copy_or_network_raises_instead_of_hanging(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(LOCAL_COPY_ENV_VAR, raising=False)
    asked = []
    monkeypatch.setattr(
        tfds_source,
        "is_host_reachable",
        lambda host, timeout_seconds: asked.append((host, timeout_seconds)) or False,
    )
    monkeypatch.setattr(
        tfds_source, "build_tfds_dataset", pytest.fail  # must not try to download
    )
    with pytest.raises(ConnectionError, match="local_copy"):
        load_corpus("tfds", data_dir=tmp_path, reachability_timeout_seconds=2.5)
    assert asked == [("raw.githubusercontent.com", 2.5)]


# --- auto -------------------------------------------------------------------


def test_auto_falls_back_to_builtin_when_tfds_is_unreachable(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(LOCAL_COPY_ENV_VAR, raising=False)
    asked = []
    monkeypatch.setattr(
        tfds_source,
        "is_host_reachable",
        lambda host, timeout_seconds: asked.append(timeout_seconds) or False,
    )
    monkeypatch.setattr(tfds_source, "build_tfds_dataset", pytest.fail)
    corpus = load_corpus("auto", data_dir=tmp_path, reachability_timeout_seconds=3.0)
    assert corpus.source == "builtin"
    assert asked == [3.0]  # one quick check, with the configured timeout
    out = capsys.readouterr().out
    assert "not reachable within 3.0 s" in out and "corpus source: builtin" in out


def test_auto_uses_tfds_when_the_host_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(LOCAL_COPY_ENV_VAR, raising=False)
    monkeypatch.setattr(tfds_source, "is_host_reachable", lambda *a, **k: True)
    downloads = []

    def fake_build(name, data_dir=None, local_copy=None):
        downloads.append((name, local_copy))
        return "builder"

    monkeypatch.setattr(tfds_source, "build_tfds_dataset", fake_build)
    monkeypatch.setattr(
        tfds_source, "read_tfds_texts", lambda builder, split, field: ["A:\nhi\n\nB:\nho"]
    )
    corpus = load_corpus("auto", data_dir=tmp_path)
    assert corpus.source == "tfds" and corpus.documents == ("A:\nhi", "B:\nho")
    assert downloads == [(TFDS_NAME, None)]
    assert "reachable" in capsys.readouterr().out


def test_auto_falls_back_when_the_download_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(LOCAL_COPY_ENV_VAR, raising=False)
    monkeypatch.setattr(tfds_source, "is_host_reachable", lambda *a, **k: True)

    def failing_build(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(tfds_source, "build_tfds_dataset", failing_build)
    corpus = load_corpus("auto", data_dir=tmp_path)
    assert corpus.source == "builtin"
    assert "connection reset" in capsys.readouterr().out


def test_auto_prefers_the_configured_local_copy(
    offline_tfds_dir, prose_copy, no_network, monkeypatch, capsys
):
    monkeypatch.setenv(LOCAL_COPY_ENV_VAR, str(prose_copy))
    corpus = load_corpus("auto", tfds_name=PROSE_TFDS_NAME, data_dir=offline_tfds_dir)
    assert corpus.source == "tfds"
    assert str(prose_copy) in capsys.readouterr().out
    monkeypatch.setenv(LOCAL_COPY_ENV_VAR, str(prose_copy) + ".missing")
    with pytest.raises(FileNotFoundError, match=r"\.missing"):
        choose_source("auto", tfds_name=PROSE_TFDS_NAME, data_dir=offline_tfds_dir)


def test_auto_reuses_an_already_prepared_dataset(offline_tfds_dir, no_network):
    choice = choose_source("auto", tfds_name=PROSE_TFDS_NAME, data_dir=offline_tfds_dir)
    assert choice.source == "tfds" and "already prepared" in choice.reason


# --- local sources ----------------------------------------------------------


def test_text_file_and_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_text("one\n\ntwo\n", encoding="utf-8")
    (tmp_path / "b" / "c.txt").write_text("three", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("not text")
    corpus = load_corpus("text", path=tmp_path, verbose=False)
    assert corpus.documents == ("one", "two\n", "three")
    assert corpus.source == "text" and "2 files" in corpus.origin
    single = load_corpus("text", path=tmp_path / "a.txt", document_split="none", verbose=False)
    assert single.documents == ("one\n\ntwo\n",)


def test_jsonl_reads_the_text_field(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [{"text": "alpha", "id": 1}, {"text": "beta\n\ngamma"}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert load_corpus("jsonl", path=path, verbose=False).documents == (
        "alpha", "beta", "gamma",
    )
    assert load_corpus(
        "jsonl", path=path, document_split="none", verbose=False
    ).documents == ("alpha", "beta\n\ngamma")


def test_iterable_and_builtin():
    corpus = load_corpus("iterable", texts=(t for t in ["x", "y\n\nz"]), verbose=False)
    assert corpus.documents == ("x", "y", "z")
    builtin = load_corpus("builtin", verbose=False)
    assert builtin.source == "builtin" and builtin.num_characters > 400_000
    assert any("assignment statement" in d for d in builtin.documents)


def test_document_split_modes():
    text = "a\nb\n\n \n\tc\n\n"
    assert split_documents(text, "paragraphs") == ["a\nb", "\tc"]
    assert split_documents(text, "lines") == ["a", "b", "\tc"]
    assert split_documents(text, "none") == [text]
    chunks = split_documents(text, "chunks", chunk_characters=4)
    assert "".join(chunks) == text and [len(c) for c in chunks] == [4, 4, 3]
    with pytest.raises(ValueError, match="chunk_characters.*Received: chunk_characters=0"):
        split_documents(text, "chunks", chunk_characters=0)
    with pytest.raises(ValueError, match="'sentences'"):
        split_documents(text, "sentences")


def test_split_train_validation_holds_out_the_tail():
    documents = [f"doc {i} " + "x" * i for i in range(1, 41)]
    train, validation = split_train_validation(documents, 0.1)
    assert train + validation == tuple(documents)
    held = sum(map(len, validation)) / sum(map(len, documents))
    assert 0.1 <= held < 0.1 + len(documents[-1]) / sum(map(len, documents))
    assert split_train_validation(documents, 0) == (tuple(documents), ())
    with pytest.raises(ValueError, match="1 document"):
        split_train_validation(["only one"], 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\).*1.5"):
        split_train_validation(documents, 1.5)


# --- bad input --------------------------------------------------------------


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt.*does not exist"):
        load_corpus("text", path=tmp_path / "nope.txt", verbose=False)
    with pytest.raises(ValueError, match="holds no .jsonl files"):
        load_corpus("jsonl", path=tmp_path, verbose=False)


def test_unreadable_encoding_is_a_clear_error(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.txt.*'utf-8'.*offset 3.*encoding="):
        load_corpus("text", path=path, verbose=False)
    corpus = load_corpus("text", path=path, encoding="latin-1", verbose=False)
    assert corpus.documents == ("café au lait",)
    with pytest.raises(ValueError, match="Unknown encoding 'klingon'"):
        load_corpus("text", path=path, encoding="klingon", verbose=False)


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    with pytest.raises(ValueError, match="holds no text"):
        load_corpus("text", path=tmp_path / "empty.txt", verbose=False)
    with pytest.raises(ValueError, match="holds no text"):
        load_corpus("iterable", texts=[], verbose=False)


def test_bad_arguments_name_the_value(tmp_path):
    with pytest.raises(ValueError, match="'wikipedia'"):
        load_corpus("wikipedia", verbose=False)
    with pytest.raises(TypeError, match=r"texts\[1\].*int"):
        load_corpus("iterable", texts=["ok", 3], verbose=False)
    with pytest.raises(ValueError, match="needs `path`"):
        load_corpus("text", verbose=False)
    with pytest.raises(ValueError, match="`split` only applies to TFDS"):
        load_corpus("builtin", split="train", verbose=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2 has no 'text' field.*\['body'\]"):
        load_corpus("jsonl", path=bad, verbose=False)
    bad.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1 is not valid JSON"):
        load_corpus("jsonl", path=bad, verbose=False)
