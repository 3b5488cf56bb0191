"""One self-erasing status line on a terminal: the shell's progress while a statement waits, the archive's
progress while a run goes on."""

from __future__ import annotations

from typing import TextIO

__all__ = ["StatusLine"]


class StatusLine:
    """``show(text)`` draws the line over itself; ``clear()`` erases it before anything else is written."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def show(self, text: str) -> None:
        """Draw ``text`` over the line."""
        # Marked shown first: Ctrl-C raises KeyboardInterrupt between any two lines, and a drawn line that is
        # not marked would never be erased.
        self.shown = True
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()

    def clear(self) -> None:
        """Erase the line, if it is shown."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False
