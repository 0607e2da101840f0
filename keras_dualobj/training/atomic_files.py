"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A file is written under a temporary name in the same folder (so that the rename stays
on one file system), flushed to disk with `fsync`, then moved over the final name
with `os.replace`, which POSIX and Windows both perform atomically; the folder is
synced too so that the rename itself survives a power cut. A process killed at any
moment leaves either the previous file or the complete new one, plus at most a
hidden `.<name>.partial-<pid>...` leftover that no reader picks up and the next
writer removes.
"""

import contextlib
import os
import re
import shutil
from pathlib import Path

PARTIAL_MARKER = ".partial-"
_LEFTOVER = re.compile(r"^\..+\.(partial|trash)-\d+")


def fsync_path(path):
    """Flushes a file or a folder entry to disk (folders: where the OS allows it).

    Example:
    >>> import tempfile
    >>> fsync_path(tempfile.mkdtemp())
    """
    path = Path(path)
    if path.is_dir():
        if os.name == "nt":  # Windows cannot open a folder for fsync.
            return
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    else:
        flags = os.O_RDONLY
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path):
    """`fsync_path` on every file and folder under `path`, then on `path` itself."""
    path = Path(path)
    if path.is_dir():
        for root, folders, files in os.walk(path, topdown=False):
            for name in files + folders:
                fsync_path(Path(root) / name)
    fsync_path(path)


def partial_name(final, suffix=""):
    """The hidden temporary name `final` is written under before the rename.

    `suffix` keeps an extension a writer insists on (`model.save` wants `.keras`).

    Example:
    >>> import os
    >>> partial_name("run/model.keras", suffix=".keras").name == (
    ...     f".model.keras.partial-{os.getpid()}.keras")
    True
    """
    final = Path(final)
    return final.parent / f".{final.name}{PARTIAL_MARKER}{os.getpid()}{suffix}"


def remove_path(path):
    """Deletes a file or a folder tree if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_leftovers(folder):
    """Deletes the hidden `.partial-` / `.trash-` entries killed writers left in `folder`.

    Only call it while holding the folder's `RunLock` (another live writer's
    temporary file looks the same).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    leftovers = [path for path in folder.iterdir() if _LEFTOVER.match(path.name)]
    for path in leftovers:
        remove_path(path)
    return leftovers


@contextlib.contextmanager
def atomic_path(final, suffix=""):
    """Yields a temporary path to write; on success it replaces `final` atomically.

    The body writes a file (or a folder) at the yielded path. When it returns, the
    result is synced to disk and moved over `final`; when it raises (a full disk, a
    bug), the temporary entry is deleted, `final` is left as it was, and the error
    propagates.

    Args:
        final: the path to create or replace.
        suffix: extension the temporary name must end with.

    Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> with atomic_path(target) as temporary:
    ...     _ = temporary.write_text("complete")
    >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
    ('complete', ['notes.txt'])
    """
    final = Path(final)
    temporary = partial_name(final, suffix)
    remove_path(temporary)
    try:
        yield temporary
        fsync_tree(temporary)
        if final.is_dir() and not final.is_symlink():
            # os.replace cannot move a folder over a non-empty one: move the old
            # one aside first (a kill in between leaves a hidden, ignored trash).
            trash = final.parent / f".{final.name}.trash-{os.getpid()}"
            remove_path(trash)
            os.replace(final, trash)
            os.replace(temporary, final)
            remove_path(trash)
        else:
            os.replace(temporary, final)
        fsync_path(final.parent)
    except BaseException:
        remove_path(temporary)
        raise


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically (see `atomic_path`).

    Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "run.json"
    >>> atomic_write_text(path, "{}")
    >>> path.read_text()
    '{}'
    """
    with atomic_path(path) as temporary:
        temporary.write_text(text)
