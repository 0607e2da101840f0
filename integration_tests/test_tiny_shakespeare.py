"""The real tiny_shakespeare TFDS build, offline from the raw download.

Not part of the README's test command (a user's clone has no copy of the file):
`.ci/run` runs it with `KERAS_DUALOBJ_TINY_SHAKESPEARE` pointing at the raw
`input.txt` (1,115,394 bytes), and it FAILS when that is missing, so CI never
passes by skipping it:

    KERAS_DUALOBJ_TINY_SHAKESPEARE=path/to/input.txt python -m pytest integration_tests
"""

import hashlib
import os
import socket
from pathlib import Path

import pytest

from keras_dualobj.data import load_corpus, prepare_data, tfds_source

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@pytest.fixture(scope="module")
def input_txt():
    path = os.environ.get("KERAS_DUALOBJ_TINY_SHAKESPEARE")
    if not path or not Path(path).is_file():
        pytest.fail(
            "Set KERAS_DUALOBJ_TINY_SHAKESPEARE to the raw tiny_shakespeare input.txt "
            f"(sha256 {SHA256}). Received: {path!r}"
        )
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == SHA256
    return Path(path)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_tiny_shakespeare_builds_offline_from_the_raw_download(
    input_txt, tmp_path, no_network
):
    text = input_txt.read_text(encoding="utf-8")
    splits = {
        split: load_corpus(
            "tfds", split=split, data_dir=tmp_path, local_copy=input_txt,
            document_split="none", verbose=False,
        ).documents
        for split in ("train", "validation", "test")
    }
    # TFDS cuts the file at 90% / 95% of its characters, one example per split.
    assert "".join(splits["train"] + splits["validation"] + splits["test"]) == text
    assert splits["train"] == (text[: int(len(text) * 0.9)],)
    assert splits["train"][0].startswith("First Citizen:\nBefore we proceed")


def test_the_main_jobs_budget_fits_tiny_shakespeare_without_raising_r(
    input_txt, tmp_path, no_network
):
    data = prepare_data(
        "auto", local_copy=str(input_txt), data_dir=tmp_path, tokenizer="byte",
        sequence_length=128, batch_size=32, token_budget=2**19, fit_repetitions=True,
        verbose=False,
    )
    assert data.corpus_source == "tfds"
    assert (data.plan.repetitions, data.plan.requested_repetitions) == (1, None)
    assert data.plan.total_tokens == 2**19
