"""One process per run folder: a lock file naming its owner.

Two processes training into one folder would interleave their checkpoints and logs
(and `--overwrite` would delete a live run's files). `RunLock` makes the second one
fail at once with a message naming the first one's pid. The lock is the file
`.keras_dualobj.lock` in the folder, holding the owner's pid, host, start time and
command line; where the OS offers it (Linux, macOS) the file is also held with
`fcntl.flock`, which the kernel releases when the owner dies, however it dies. A
lock left by a process that is gone (killed, crashed, machine rebooted) is taken
over with a message. A process may lock a folder it already holds (nested use).
"""

import contextlib
import errno
import functools
import inspect
import json
import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the pid in the file decides.
    fcntl = None

LOCK_FILE = ".keras_dualobj.lock"
# Held locks of this process: resolved folder -> [depth, descriptor, created folder].
_HELD = {}


class RunFolderInUseError(ValueError):
    """Another live process holds the run folder's lock; the message names its pid."""


def _read_owner(path):
    try:
        owner = json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _pid_alive(pid):
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":
        try:
            import psutil
        except ImportError:
            return True  # cannot tell: assume it lives (the message says what to do)
        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(owner):
    return (
        f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since "
        f"{owner.get('started', '?')}, running {owner.get('command', '?')!r}"
    )


def _in_use(folder, path, owner):
    return RunFolderInUseError(
        f"{str(folder)!r} is in use by another process ({_describe(owner)}; lock file "
        f"{str(path)!r}). Two processes on one run folder would interleave their "
        "checkpoints and logs: wait for it to finish or stop it, or choose another "
        "folder. If that process is gone, delete the lock file."
    )


def _owner_record():
    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(sys.argv),
    })


def _open_locked(folder, path, stream):
    """Opens and locks `path`; returns its descriptor (raises if a live owner holds it)."""
    for _ in range(10):
        if fcntl is not None:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(descriptor)
                if error.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise _in_use(folder, path, _read_owner(path)) from None
                raise
            try:
                same_file = os.fstat(descriptor).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:  # its owner deleted it while we waited: start again
                os.close(descriptor)
                continue
        else:
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = _read_owner(path)
                if _pid_alive(owner.get("pid")):
                    raise _in_use(folder, path, owner) from None
                _report_stale(folder, owner, stream)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
        owner = _read_owner(path)
        if owner.get("pid") not in (None, os.getpid()):
            _report_stale(folder, owner, stream)
        os.ftruncate(descriptor, 0)
        os.write(descriptor, _owner_record().encode())
        os.fsync(descriptor)
        return descriptor
    raise RunFolderInUseError(
        f"Could not lock {str(folder)!r}: its lock file {str(path)!r} kept changing "
        "(another process is taking it)."
    )


def _report_stale(folder, owner, stream):
    stream = sys.stderr if stream is None else stream
    if stream is not False:
        stream.write(
            f"[keras_dualobj] Taking over the lock of {str(folder)!r}: the process that "
            f"held it ({_describe(owner)}) is gone.\n"
        )


class RunLock:
    """Context manager holding `folder`'s lock (created with the folder if needed).

    Args:
        folder: the run (or study) folder.
        stream: where the stale-lock message goes (default `sys.stderr`; `False`:
            silent).

    Raises:
        RunFolderInUseError: another live process holds the folder.
        ValueError: `folder` exists and is not a folder.

    Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with RunLock(folder):
    ...     with RunLock(folder):  # the same process may nest
    ...         (Path(folder) / LOCK_FILE).is_file()
    True
    >>> (Path(folder) / LOCK_FILE).exists()
    False
    """

    def __init__(self, folder, stream=None):
        self.folder = Path(folder)
        self.stream = stream
        self.path = self.folder / LOCK_FILE

    def acquire(self):
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"Output directory {str(self.folder)!r} exists and is not a folder.")
        created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in _HELD:
            _HELD[key][0] += 1
            return self
        try:
            descriptor = _open_locked(self.folder, self.path, self.stream)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()
            raise
        _HELD[key] = [1, descriptor, created]
        return self

    def release(self):
        key = str(self.folder.resolve())
        held = _HELD.get(key)
        if held is None:
            return
        held[0] -= 1
        if held[0]:
            return
        del _HELD[key]
        _, descriptor, created = held
        # Unlinked while still locked: a waiter that opened the old file sees the
        # change (see `_open_locked`) instead of locking a deleted file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(descriptor)
        if created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only if nothing was written there

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc_info):
        self.release()


def holds_run_lock(argument):
    """Decorator: the function runs holding the `RunLock` of its `argument` folder.

    Example:
    >>> import tempfile
    >>> @holds_run_lock("output_dir")
    ... def work(output_dir):
    ...     return (Path(output_dir) / LOCK_FILE).is_file()
    >>> work(tempfile.mkdtemp())
    True
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            folder = signature.bind(*args, **kwargs).arguments[argument]
            with RunLock(folder):
                return function(*args, **kwargs)

        return wrapper

    return decorate
