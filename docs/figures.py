"""Writes the main job's figures into the docs from a run, never by hand.

    python docs/figures.py --threads 1                  # run the main job, record it, rewrite
    python docs/figures.py --tiny-shakespeare input.txt # also the tiny Shakespeare run
    python docs/figures.py --from-record                # rewrite from docs/figures.json only
    python docs/figures.py --check                      # exit 1 if the docs differ from it

The README's main job (`keras-dualobj train --preset small --output-dir runs/small`) runs
in a fresh temporary folder with an empty TFDS data folder and no local TFDS copy, as the
README's set-up does on a clean machine. Its console output, `summary.json` and wall time are
recorded in `docs/figures.json` (a run not repeated, such as tiny Shakespeare without
`--tiny-shakespeare`, keeps its recorded entry); every figure between a pair of markers
in `PAGES` is then rendered from that record:

    <!-- figures:NAME -->...<!-- /figures:NAME -->

`render` is a pure function of the record (tested in tests/test_figures.py against the
committed pages), so a page and the record it quotes cannot drift apart.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RECORD = REPO_ROOT / "docs" / "figures.json"
PAGES = [REPO_ROOT / "docs" / "training.md"]
MAIN_JOB = ["train", "--preset", "small", "--output-dir", "runs/small"]
MARKED = re.compile(r"<!-- figures:([a-z0-9-]+) -->(.*?)<!-- /figures:\1 -->", re.S)


def run_job(arguments, threads=None, local_copy=None):
    """Runs `keras-dualobj ARGUMENTS` in a fresh folder; its console, summary and seconds."""
    folder = Path(tempfile.mkdtemp(prefix="figures-"))
    command = [sys.executable, "-m", "keras_dualobj", *arguments]
    if threads is not None:
        command += ["--threads", str(threads)]
    environment = {key: value for key, value in os.environ.items()
                   if key != "KERAS_DUALOBJ_TFDS_LOCAL_COPY"}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # An empty TFDS folder: what a clean machine has (never a dataset prepared before).
    environment["TFDS_DATA_DIR"] = str(folder / "tensorflow_datasets")
    if local_copy is not None:
        environment["KERAS_DUALOBJ_TFDS_LOCAL_COPY"] = str(Path(local_copy).resolve())
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=folder, env=environment, capture_output=True,
                               text=True)
    seconds = time.perf_counter() - started
    if completed.returncode:
        sys.stderr.write(completed.stderr[-4000:])
        raise SystemExit(f"{' '.join(command)} failed with exit code {completed.returncode}")
    output_dir = folder / arguments[arguments.index("--output-dir") + 1]
    return {
        "command": ["keras-dualobj", *command[3:]],
        "console": completed.stdout,
        "summary": json.loads((output_dir / "summary.json").read_text()),
        "seconds": round(seconds, 1),
    }


def abridge(console):
    """The console before its summary as the docs show it: the set-up lines, the progress up
    to the first held-out evaluation, then the last progress line and the last evaluation."""
    lines = console.rstrip("\n").split("\n")
    if "=== Summary ===" not in lines:
        raise ValueError("The console output holds no '=== Summary ===': the run did not end.")
    end = lines.index("=== Summary ===") - 1  # the blank line before it
    progress = [i for i, line in enumerate(lines[:end])
                if line.startswith("step ") or line.startswith("  held-out at step")]
    first_held_out = next(i for i in progress if lines[i].startswith("  held-out"))
    last_step = max(i for i in progress if lines[i].startswith("step "))
    kept = [i for i in range(end)
            if i not in progress or i <= first_held_out or i == last_step or i == progress[-1]]
    return [lines[i] for i in kept]


def main_job_block(console, summary):
    """The docs' text block: the abridged console and the summary, formatted by the CLI."""
    sys.path.insert(0, str(REPO_ROOT))
    from keras_dualobj.cli.train import _format_summary  # the one format of the summary

    lines = [*abridge(console), _format_summary(summary)]  # the summary opens with a blank line
    return "\n```text\n" + "\n".join(lines) + "\n```\n"


def command_text(record):
    """`keras-dualobj train` plus any flag beyond the README's (`--threads 1`)."""
    return " ".join(["keras-dualobj train", *record["command"][1 + len(MAIN_JOB):]])


def render(record):
    """NAME -> the text between the markers `figures:NAME`, from a `docs/figures.json` record."""
    main = record["main_job"]
    rendered = {
        "main-job-seconds": f"{main['seconds']:.0f} s for `{command_text(main)}`",
        "main-job": main_job_block(main["console"], main["summary"]),
    }
    shakespeare = record.get("tiny_shakespeare")
    if shakespeare is not None:
        held_out = shakespeare["summary"]["held_out"]
        rendered["tiny-shakespeare"] = (
            f"held-out AR loss {held_out['ar_loss']:.3f} and MD ELBO {held_out['md_loss']:.3f} "
            f"nats/token after {shakespeare['summary']['wall_seconds']:.0f} s of training"
        )
    return rendered


def rewrite(text, rendered, page="the page"):
    """`text` with every marked figure replaced by its rendering; unknown names are an error."""
    names = MARKED.findall(text)
    unknown = sorted({name for name, _ in names} - set(rendered))
    if unknown:
        raise ValueError(f"{page} marks figures {unknown}; the record renders {sorted(rendered)}.")
    return MARKED.sub(
        lambda match: f"<!-- figures:{match[1]} -->{rendered[match[1]]}<!-- /figures:{match[1]} -->",
        text,
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, help="passed to `keras-dualobj train`")
    parser.add_argument("--tiny-shakespeare", help="the raw tiny Shakespeare download (input.txt)")
    parser.add_argument("--from-record", action="store_true", help="do not train; use the record")
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is out of date")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if not (args.from_record or args.check):
        record["main_job"] = run_job(MAIN_JOB, args.threads)
        if args.tiny_shakespeare:
            record["tiny_shakespeare"] = run_job(
                ["train", "--preset", "small", "--output-dir", "runs/small"], args.threads,
                local_copy=args.tiny_shakespeare)
        RECORD.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    rendered = render(record)
    stale = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        updated = rewrite(text, rendered, page.name)
        if updated != text:
            stale.append(page.relative_to(REPO_ROOT).as_posix())
            if not args.check:
                page.write_text(updated, encoding="utf-8")
    print(("out of date: " if args.check else "rewrote: ") + (", ".join(stale) or "nothing"))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
