"""The paths a run wrote in its folder, so that `--overwrite` deletes exactly those.

A run records every path before it writes it, in `manifest.json` in the run folder:

    {"files": ["run.json", "logs/training_log.csv", "checkpoints/step_00000010", ...],
     "folders": ["checkpoints", "logs", "logs/tensorboard"]}

`files` are files (or whole folders, such as a checkpoint or `tokenizer/`) the run
wrote; `folders` are the folders it created to hold them. `delete_written` deletes the
files, then each folder that is empty afterwards, then the manifest: a file a user put
in `logs/` stays, and so does `logs/` around it.
"""

import json
import shutil
from pathlib import Path

from keras_dualobj.training.atomic_files import atomic_write_text

MANIFEST_FILE = "manifest.json"


def _relative(output_dir, path):
    path = Path(path)
    return (path.relative_to(output_dir) if path.is_absolute() else path).as_posix()


def read_manifest(output_dir):
    """`{"files": [...], "folders": [...]}` of the run in `output_dir`, or `None`."""
    path = Path(output_dir) / MANIFEST_FILE
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    return {"files": list(manifest.get("files", [])), "folders": list(manifest.get("folders", []))}


def record_written(output_dir, files=(), folders=()):
    """Adds `files` and `folders` (paths in `output_dir`) to its manifest.

    Call it before writing them, so that a run killed mid-write has them listed.

    Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> record_written(folder, files=["logs/training_log.csv"], folders=["logs"])
    >>> read_manifest(folder)
    {'files': ['logs/training_log.csv'], 'folders': ['logs']}
    """
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir) or {"files": [], "folders": []}
    changed = False
    for key, paths in (("files", files), ("folders", folders)):
        for path in paths:
            name = _relative(output_dir, path)
            if name not in manifest[key]:
                manifest[key].append(name)
                changed = True
    if changed or not (output_dir / MANIFEST_FILE).is_file():
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(output_dir / MANIFEST_FILE, json.dumps(manifest, indent=1))


def _legacy_manifest(output_dir):
    """What a run written before manifests existed holds, by the names it writes."""
    files = ["run.json", "model.keras", "summary.json", "tokenizer", "logs/training_log.csv"]
    for pattern in ("logs/tensorboard/events.out.tfevents.*", "checkpoints/step_*"):
        files += [_relative(output_dir, path) for path in sorted(output_dir.glob(pattern))]
    return {"files": files, "folders": ["logs/tensorboard", "logs", "checkpoints"]}


def delete_written(output_dir):
    """Deletes what the run in `output_dir` wrote (see the module); returns the
    paths deleted. A folder holding no manifest and no `run.json` loses nothing.

    Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> record_written(folder, files=["logs/training_log.csv"], folders=["logs"])
    >>> (folder / "logs").mkdir(); (folder / "logs" / "training_log.csv").write_text("step")
    4
    >>> (folder / "logs" / "mine.txt").write_text("kept")
    4
    >>> delete_written(folder)
    ['logs/training_log.csv', 'manifest.json']
    >>> sorted(path.name for path in folder.rglob("*"))
    ['logs', 'mine.txt']
    """
    output_dir = Path(output_dir)
    manifest = read_manifest(output_dir)
    if manifest is None:
        if not (output_dir / "run.json").is_file():
            return []
        manifest = _legacy_manifest(output_dir)
    deleted = []
    for name in manifest["files"]:
        path = output_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        deleted.append(name)
    # Deepest first, so that `logs/tensorboard` goes before `logs`.
    for name in sorted(manifest["folders"], key=lambda n: n.count("/"), reverse=True):
        path = output_dir / name
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if (output_dir / MANIFEST_FILE).is_file():
        (output_dir / MANIFEST_FILE).unlink()
        deleted.append(MANIFEST_FILE)
    return deleted
