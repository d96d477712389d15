"""A small text progress bar for management commands (no extra dependency)."""

from __future__ import annotations

from typing import Protocol


class Stream(Protocol):
    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


class ProgressBar:
    """Draws `label [#####     ] done/total` on one line of a terminal; plain lines otherwise."""

    def __init__(self, stream: Stream, label: str, total: int, width: int = 30) -> None:
        self.stream, self.label, self.total, self.width = stream, label, total, width
        self.done = 0
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def advance(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        if self.tty:
            self._draw(end="")

    def close(self) -> None:
        self._draw(end="\n")

    def _draw(self, end: str) -> None:
        filled = self.width * self.done // self.total if self.total else self.width
        bar = "#" * filled + " " * (self.width - filled)
        prefix = "\r" if self.tty else ""
        self.stream.write(f"{prefix}{self.label} [{bar}] {self.done}/{self.total}{end}")
        self.stream.flush()
