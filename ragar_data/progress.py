"""Progress reporting: the one place where progress bars are made (synth, extract, export, import, training).

On a terminal it draws a tqdm bar. When stderr is not a terminal (a log file, a CI job, a pipe) it prints plain
lines instead, one per tenth of the total and at least one per `interval_s` seconds, rather than tqdm's
carriage-return redraws that fill a log with thousands of partial lines.

Owns: the bar's look and when it prints. Does not own: what is counted (callers advance it by sequences,
frames, batches or bytes, and may grow `total` as they learn it, e.g. frames of a video once it is opened).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

Item = TypeVar("Item")

PLAIN_INTERVAL_S = 30.0  # a plain line at least this often while work advances
PLAIN_STEPS = 10  # and one at each tenth of the total


class Progress:
    """A counter shown as a bar (terminal) or as plain lines (anything else); a no-op when disabled.

    Use as a context manager; `advance(n)` counts work done, `total` may be set or grown at any time and
    `note(text)` shows a short status such as a rate or a loss.
    """

    def __init__(self, description: str, total: int | None = None, *, unit: str = "it", initial: int = 0,
                 enabled: bool = True, unit_scale: bool = False, stream: TextIO | None = None,
                 interval_s: float = PLAIN_INTERVAL_S):
        self.description, self.unit, self.unit_scale = description, unit, unit_scale
        self.count, self._initial, self._total, self._note = initial, initial, total, ""
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._started = self._last_line = time.monotonic()
        self._last_step = self._step(initial)
        self._bar, self._printed = None, None
        self._plain = enabled and not _is_terminal(self._stream)
        if enabled and not self._plain:
            self._bar = tqdm(total=total, initial=initial, desc=description, unit=unit, unit_scale=unit_scale,
                             dynamic_ncols=True, file=self._stream)

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        self._last_step = self._step(self.count)
        if self._bar is not None:
            self._bar.total = value
            self._bar.refresh()

    def advance(self, count: int = 1) -> None:
        self.count += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._plain:
            step, now = self._step(self.count), time.monotonic()
            if step > self._last_step or now - self._last_line >= self._interval_s:
                self._last_step, self._last_line = step, now
                self._write_line()

    def note(self, text: str) -> None:
        self._note = text
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain:
            self._plain = False
            if self._printed != self.count:  # the last line shows the end already otherwise
                self._write_line(final=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _step(self, count: int) -> int:
        return count * PLAIN_STEPS // self._total if self._total else 0

    def _amount(self, count: float) -> str:
        return tqdm.format_sizeof(count) if self.unit_scale else f"{count:.3g}" if count < 100 else f"{count:.0f}"

    def _write_line(self, final: bool = False) -> None:
        elapsed = time.monotonic() - self._started
        self._printed = self.count
        done = self._amount(self.count)
        if self._total:
            done += f"/{self._amount(self._total)} {self.unit} ({100 * self.count / self._total:.0f}%)"
        else:
            done += f" {self.unit}"
        done_here = self.count - self._initial
        rate = f"{self._amount(done_here / elapsed)} {self.unit}/s" if elapsed > 0 and done_here else ""
        ending = "stopped" if final and self._total and self.count < self._total else ""
        parts = [done, f"{tqdm.format_interval(elapsed)} elapsed", rate, self._note, ending]
        print(f"{self.description}: " + ", ".join(p for p in parts if p), file=self._stream, flush=True)


def track(items: Iterable[Item], description: str, total: int | None = None, *, unit: str = "it",
          enabled: bool = True) -> Iterator[Item]:
    """Yield `items`, advancing a `Progress` by one per item (total: `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(description, total, unit=unit, enabled=enabled) as progress:
        for item in items:
            yield item
            progress.advance()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False
