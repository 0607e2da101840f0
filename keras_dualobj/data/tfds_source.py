"""TFDS text datasets, built offline from a local copy of the raw download.

TFDS looks for a dataset's raw files in its *manual directory* before it tries
the network: when a file named as in the dataset's registered checksums (for
`tiny_shakespeare`: `input.txt`) is there, the download manager computes its
size and sha256, checks them against the registered ones and builds from it.
`build_tfds_dataset` points the manual directory at the local copy (or at a
link to it, named as TFDS expects, inside `data_dir`), turns off the GCS
shortcut and forces checksum validation, so the build never opens a socket and
a wrong file is an error rather than a silently different dataset.

`tensorflow_datasets` is imported lazily: it takes seconds to import and only
the TFDS source needs it.
"""

import os
import shutil
import socket
import urllib.parse
from pathlib import Path

DEFAULT_TFDS_NAME = "tiny_shakespeare"


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


def tfds_builder(name, data_dir=None):
    """The TFDS builder for `name` (no download, no network).

    Example:

    >>> import tempfile
    >>> tfds_builder("tiny_shakespeare", tempfile.mkdtemp()).is_prepared()
    False
    """
    return _tfds().builder(name, data_dir=None if data_dir is None else str(data_dir))


def download_hosts(builder):
    """Host names the builder would download from (from its registered URLs).

    Example:

    >>> import tempfile
    >>> download_hosts(tfds_builder("tiny_shakespeare", tempfile.mkdtemp()))
    ['raw.githubusercontent.com']
    """
    urls = sorted(getattr(builder, "url_infos", None) or {})
    return sorted({urllib.parse.urlsplit(url).hostname for url in urls} - {None})


def is_host_reachable(host, *, port=443, timeout_seconds=3.0):
    """Whether a TCP connection to `host:port` opens within `timeout_seconds`.

    A quick check before asking TFDS to download: without a network TFDS's own
    download hangs for minutes before failing.

    Example:

    >>> is_host_reachable("localhost", port=1, timeout_seconds=0.5)
    False
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


def _manual_dir_for(local_copy, builder, data_dir):
    """A directory where TFDS finds `local_copy` under its expected file name."""
    local_copy = Path(local_copy).expanduser()
    if not local_copy.exists():
        raise FileNotFoundError(
            f"Local copy {str(local_copy)!r} of the TFDS dataset {builder.name!r} "
            "does not exist. Pass the raw download file (e.g. tinyshakespeare/"
            "input.txt) or the folder holding it."
        )
    if local_copy.is_dir():
        return local_copy
    expected = sorted(
        info.filename
        for info in (getattr(builder, "url_infos", None) or {}).values()
        if info.filename
    )
    if local_copy.name in expected:
        return local_copy.parent
    if len(expected) != 1:
        raise ValueError(
            f"TFDS dataset {builder.name!r} expects the raw files {expected}; a "
            f"single file {str(local_copy)!r} cannot stand for them. Pass a folder "
            "holding those files."
        )
    # A local copy may be read-only and named differently: link it,
    # under the name TFDS expects, inside the (writable) data_dir.
    manual_dir = Path(data_dir) / "manual" / builder.name
    manual_dir.mkdir(parents=True, exist_ok=True)
    target = manual_dir / expected[0]
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        target.symlink_to(local_copy.resolve())
    except OSError:
        shutil.copyfile(local_copy, target)
    return manual_dir


def build_tfds_dataset(name=DEFAULT_TFDS_NAME, *, data_dir=None, local_copy=None):
    """Prepares TFDS dataset `name` in `data_dir`, offline when `local_copy` is set.

    With `local_copy` (the raw download: a file, or a folder of files) the
    build reads only that copy, validated against TFDS's registered sha256.
    Without it, TFDS downloads as usual (callers check reachability first).
    An already prepared dataset is reused.

    Args:
        name: TFDS dataset name, e.g. `"tiny_shakespeare"`.
        data_dir: where TFDS writes the prepared dataset (default: TFDS's,
            `~/tensorflow_datasets`). Must be writable.
        local_copy: path to the raw download, or `None`.

    Returns:
        The prepared `tfds.core.DatasetBuilder`.

    Example (builds in about 3 s from a local copy of the raw download; no network):

    ```python
    builder = build_tfds_dataset(
        "tiny_shakespeare",
        data_dir=tmp_dir,
        local_copy="path/to/tinyshakespeare/input.txt",
    )
    builder.info.splits["train"].num_examples  # 1
    ```
    """
    tfds = _tfds()
    builder = tfds_builder(name, data_dir)
    if builder.is_prepared():
        return builder
    if local_copy is None:
        builder.download_and_prepare()
        return builder
    manual_dir = _manual_dir_for(
        local_copy, builder, default_data_dir() if data_dir is None else data_dir
    )
    config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir),
        force_checksums_validation=True,
        try_download_gcs=False,
    )
    builder.download_and_prepare(download_config=config)
    return builder


def read_tfds_texts(builder, split, text_field="text"):
    """The `text_field` strings of every example of `split`, in TFDS order.

    Args:
        builder: a prepared TFDS builder.
        split: a TFDS split string (`"train"`, `"validation[:50%]"`, ...).
        text_field: the feature holding the text.

    Returns:
        A list of `str`.
    """
    tfds = _tfds()
    if split not in builder.info.splits and "[" not in split and "+" not in split:
        raise ValueError(
            f"TFDS dataset {builder.name!r} has no split {split!r}; it has "
            f"{sorted(builder.info.splits)}."
        )
    features = builder.info.features
    if text_field not in features:
        raise ValueError(
            f"TFDS dataset {builder.name!r} has no feature {text_field!r}; its "
            f"features are {sorted(features)}. Pass `text_field=`."
        )
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    texts = []
    for example in tfds.as_numpy(dataset):
        value = example[text_field]
        texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    return texts


def default_data_dir():
    """TFDS's default data directory (respects `TFDS_DATA_DIR`)."""
    return os.environ.get("TFDS_DATA_DIR") or str(
        Path("~/tensorflow_datasets").expanduser()
    )
