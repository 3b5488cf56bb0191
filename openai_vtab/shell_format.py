"""Text for the shell, the same on every apsw version: boxes whose wrapping never splits a token, markdown
tables, the name columns of ``.tables`` and ``.indexes``, and error messages on one line.

apsw's own box mode breaks any value at the column edge (with a hyphen since 3.47, without one before), so an
id copied from the screen is wrong. Here a value is only broken at a space or after a comma (the commas of
JSON), and a column is never narrower than its longest unbreakable piece: a table wider than the terminal is
the lesser evil.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["box", "csv_field", "display_width", "markdown", "name_columns", "sanitize", "wrap"]

# The pieces a line is wrapped between: runs of spaces, and runs of other characters each ending after a comma.
PIECES = re.compile(r" +|[^ ,]*,|[^ ,]+")
UNICODE_LINES = {"top": "┌─┬┐", "middle": "├─┼┤", "bottom": "└─┴┘", "bar": "│"}
ASCII_LINES = {"top": "+-++", "middle": "+-++", "bottom": "+-++", "bar": "|"}


def display_width(text: str) -> int:
    """Columns ``text`` takes on a terminal: wide East Asian characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) == "Cf"
        else 2
        if unicodedata.east_asian_width(c) in "WF"
        else 1
        for c in text
    )


def wrap(text: str, width: int) -> list[str]:
    """``text`` as lines of at most ``width`` columns, broken only at spaces (dropped) and after commas.

    A piece that cannot be broken stays whole on a line of its own, however wide.
    """
    lines = []
    for line in text.split("\n"):
        current = ""
        for piece in PIECES.findall(line):
            if not current.strip(" ") or display_width(current + piece) <= width:
                current += piece  # leading spaces stay with the first piece
            else:
                lines.append(current.rstrip(" "))
                current = "" if piece.startswith(" ") else piece
        lines.append(current.rstrip(" "))
    return lines


def sanitize(text: str, level: int) -> str:
    """Text safe to draw inside a box, by apsw's ``--string-sanitize`` levels.

    0: tabs and carriage returns become spaces, other control characters U+FFFD; 1: also every non-ASCII
    character as ``{ITS NAME}``; 2: also every non-ASCII character as ``.``. Backslashes are left alone, so
    JSON escapes read as they are.
    """
    text = text.replace("\r\n", "\n")
    text = "".join(
        c if c == "\n" or unicodedata.category(c) != "Cc" else " " if c in "\t\r" else "\ufffd" for c in text
    )
    if level == 1:
        return "".join(c if c.isascii() else "{" + unicodedata.name(c, f"U+{ord(c):04X}") + "}" for c in text)
    if level == 2:
        return "".join(c if c.isascii() else "." for c in text)
    return text


def box(
    names: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    text: Callable[[Any], str],
    width: int,
    unicode: bool = True,
    paint: Callable[[Any, str], str] = lambda value, shown: shown,
    paint_header: Callable[[str], str] = lambda shown: shown,
) -> str:
    """``rows`` as a table drawn with lines, at most ``width`` columns wide where the values allow it.

    ``text(value)`` gives the text shown for a value; integers are right-aligned, the rest left-aligned and
    the names centered. ``paint`` and ``paint_header`` colour a cell's text (already padded).
    """
    texts = [[text(value) for value in row] for row in rows]
    columns = [[name, *(row[i] for row in texts)] for i, name in enumerate(names)]
    natural = [max(1, *(display_width(line) for cell in column for line in cell.split("\n"))) for column in columns]
    narrowest = [max(1, *(display_width(line) for cell in column for line in wrap(cell, 1))) for column in columns]
    widths = _fit(natural, narrowest, width - 3 * len(names) - 1)
    lines = UNICODE_LINES if unicode else ASCII_LINES

    def rule(kind: str) -> str:
        left, fill, cross, right = lines[kind]
        return left + cross.join(fill * (w + 2) for w in widths) + right

    def draw(cells: list[list[str]], painters: list[Callable[[str], str]], aligns: list[str]) -> list[str]:
        bar = lines["bar"]
        out = []
        for n in range(max(len(cell) for cell in cells)):
            parts = []
            for cell, w, painter, align in zip(cells, widths, painters, aligns, strict=True):
                line = cell[n] if n < len(cell) else ""
                pad = w - display_width(line)
                padded = {"<": line + " " * pad, ">": " " * pad + line, "^": _center(line, pad)}[align]
                parts.append(f" {painter(padded)} ")
            out.append(bar + bar.join(parts) + bar)
        return out

    header = draw(
        [wrap(name, w) for name, w in zip(names, widths, strict=True)], [paint_header] * len(names), ["^"] * len(names)
    )
    body = [
        draw(
            [wrap(cell, w) for cell, w in zip(row_texts, widths, strict=True)],
            [lambda shown, value=value: paint(value, shown) for value in row],
            [">" if isinstance(value, int) else "<" for value in row],
        )
        for row, row_texts in zip(rows, texts, strict=True)
    ]
    # As sqlite3: a rule between rows only when some row takes more than one line.
    between = [rule("middle")] if any(len(drawn) > 1 for drawn in body) else []
    out = [rule("top"), *header, rule("middle")]
    for i, drawn in enumerate(body):
        out += (between if i else []) + drawn
    out.append(rule("bottom"))
    return "\n".join(out) + "\n"


def _fit(natural: list[int], narrowest: list[int], available: int) -> list[int]:
    """Column widths within ``available`` columns: the widest are capped first, none below its narrowest."""

    def widths(cap: int) -> list[int]:
        return [max(low, min(high, cap)) for high, low in zip(natural, narrowest, strict=True)]

    if sum(natural) <= available:
        return natural
    low, high = 0, max(natural)  # the largest cap that fits, by bisection
    while low < high:
        cap = (low + high + 1) // 2
        if sum(widths(cap)) <= available:
            low = cap
        else:
            high = cap - 1
    return widths(low)


def _center(text: str, pad: int) -> str:
    return " " * (pad // 2) + text + " " * (pad - pad // 2)


def markdown(names: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, as sqlite3's markdown mode draws it (names centered, values left).

    ``|`` is escaped and a line break becomes ``<br>``, so that every row stays one row of the table.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\r\n", "<br>").replace("\n", "<br>")

    header = [cell(name) for name in names]
    body = [[cell(text) for text in row] for row in rows]
    widths = [max(display_width(text) for text in column) for column in zip(header, *body, strict=True)]

    def line(texts: Sequence[str], center: bool) -> str:
        cells = []
        for text, w in zip(texts, widths, strict=True):
            pad = w - display_width(text)
            cells.append(_center(text, pad) if center else text + " " * pad)
        return "| " + " | ".join(cells) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header, True), rule, *(line(row, False) for row in body)]) + "\n"


def csv_field(text: str, separator: str) -> str:
    """``text`` as sqlite3 writes a CSV field: double-quoted (inner quotes doubled) when it is empty (so that it
    differs from NULL) or holds the separator, a quote, an apostrophe, a space, a control character or anything
    beyond ASCII; as it is otherwise."""
    if text and separator not in text and all("!" <= c < "\x7f" and c not in "\"'" for c in text):
        return text
    return '"' + text.replace('"', '""') + '"'


def name_columns(names: Sequence[str], width: int = 80) -> str:
    """Names in columns down then across, each padded to the longest, as sqlite3's ``.tables`` lists them."""
    if not names:
        return ""
    longest = max(display_width(name) for name in names)
    per_line = max(1, width // (longest + 2))
    rows = -(-len(names) // per_line)
    lines = []
    for r in range(rows):
        cells = [name + " " * (longest - display_width(name)) for name in names[r::rows]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"
