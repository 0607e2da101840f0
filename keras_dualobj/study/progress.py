"""The study's progress: one overall line (steps of all cells, elapsed, ETA) and a line per cell."""

import time

from keras_dualobj.training.callbacks import format_duration


class StudyProgress:
    """One overall progress line (steps of all cells, elapsed, ETA) and a line per cell."""

    def __init__(self, total_steps, done_steps, stream):
        self.total_steps = total_steps
        self.done_steps = done_steps
        self.stream = stream
        self.started = time.perf_counter()
        self.steps_this_session = 0
        self.label = ""
        self.last_write = 0.0
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())

    def start_cell(self, label):
        self.label = label
        self._write(force=True)

    def step(self):
        self.done_steps += 1
        self.steps_this_session += 1
        self._write()

    def line(self, text):
        if self.interactive:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def _write(self, force=False):
        now = time.perf_counter()
        if not force and now - self.last_write < (0.5 if self.interactive else 30.0):
            return
        self.last_write = now
        elapsed = now - self.started
        remaining = self.total_steps - self.done_steps
        if self.steps_this_session:
            eta = format_duration(elapsed / self.steps_this_session * remaining)
        else:
            eta = "?"
        text = (
            f"[study] {self.done_steps}/{self.total_steps} steps "
            f"({100 * self.done_steps / max(self.total_steps, 1):.0f}%) | {self.label} | "
            f"elapsed {format_duration(elapsed)} | ETA {eta}"
        )
        if self.interactive:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        else:
            self.line(text)
