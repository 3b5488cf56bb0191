"""The shell's text layout (``openai_vtab.shell_format``): pure functions, so no server is needed here; the
shell's use of them is tested end to end in test_shell_habits.py."""

from __future__ import annotations

import re

import apsw
from hypothesis import given
from hypothesis import strategies as st

from openai_vtab.errors import one_line
from openai_vtab.shell_format import box, display_width, markdown, name_columns, wrap

IDS = ["ftckpt_jzorvMsSwoBLh7J1Vy0cO119", "ft:gpt-4o-mini-2024-07-18:acme-demo:tone:W4Z4CnNe:ckpt-step-3000"]
WORDS = st.text(alphabet="ab-_:.,é日", min_size=1, max_size=12)


def pieces(text: str) -> list[str]:
    """What must never be split: the runs between spaces, each cut after its commas."""
    return [piece for word in text.split() for piece in re.findall(r"[^,]*,|[^,]+", word)]


@given(st.lists(WORDS, min_size=1, max_size=12), st.lists(st.sampled_from([" ", "  ", "\n"]), max_size=12), st.data())
def test_wrap_breaks_only_at_spaces_and_after_commas(words: list[str], gaps: list[str], data: st.DataObject) -> None:
    text = "".join(word + (gaps[i] if i < len(gaps) else " ") for i, word in enumerate(words)).strip()
    width = data.draw(st.integers(min_value=1, max_value=30))
    lines = wrap(text, width)
    # Nothing is lost or added but the spaces (and line breaks) it breaks at...
    assert "".join(lines).replace(" ", "") == text.replace(" ", "").replace("\n", "")
    # ...no piece is split across lines...
    for piece in pieces(text):
        assert any(piece in line for line in lines), (piece, lines)
    # ...and a line wider than asked holds a single piece.
    for line in lines:
        assert display_width(line) <= width or len(pieces(line)) == 1, (line, width)


def test_a_box_never_splits_an_id_however_narrow() -> None:
    rows = [[IDS[0], IDS[1], 3000], ["short", "a model with a long description that goes on and on", 22]]
    drawn = box(["id", "fine_tuned_model_checkpoint", "step_number"], rows, text=str, width=40)
    lines = drawn.splitlines()
    for value in [*IDS, "fine_tuned_model_checkpoint", "3000"]:
        assert any(value in line for line in lines)
    assert len({display_width(line) for line in lines}) == 1  # every line of the table as wide as the others
    assert "-" not in drawn.replace(IDS[1], "").replace("─", "")  # no hyphen added anywhere


def test_a_box_fits_the_width_when_the_values_allow_it() -> None:
    text = "a model with a long description, which goes on and on until it no longer fits on one line"
    lines = box(["id", "description"], [[IDS[0], text]], text=str, width=60).splitlines()
    assert max(display_width(line) for line in lines) <= 60
    assert " ".join(line.split("│")[2].strip() for line in lines[3:-1]) == text


def test_a_box_aligns_wide_characters_and_right_aligns_integers() -> None:
    lines = box(["name", "n"], [["日本語", 7], ["abc", 1234]], text=str, width=80, unicode=False).splitlines()
    assert lines[3] == "| 日本語 |    7 |"
    assert lines[4] == "| abc    | 1234 |"
    assert len({display_width(line) for line in lines}) == 1


def test_markdown_keeps_each_row_on_one_line() -> None:
    lines = markdown(["a", "long name"], [["x|y", "two\nlines"], ["1", ""]]).splitlines()
    assert len(lines) == 4
    assert len({len(line) for line in lines}) == 1
    assert re.fullmatch(r"\|(-+\|)+", lines[1])
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    assert cells == [["a", "long name"], ["-" * 6, "-" * 14], ["x\\|y", "two<br>lines"], ["1", ""]]
    before, after = lines[0].index("a") - 1, lines[0].index("|", 1) - lines[0].index("a") - 1
    assert abs(before - after) <= 1  # the name centered


def test_name_columns_go_down_then_across() -> None:
    names = sorted(["a", "bbbbbbbbbbbbbbbbbbb", "c", "d", "e", "f", "g", "aux.z", "temp.h"])
    assert name_columns(names).splitlines() == [
        "a                    c                    f",
        "aux.z                d                    g",
        "bbbbbbbbbbbbbbbbbbb  e                    temp.h",
    ]
    assert name_columns([]) == ""


def test_one_line_gives_apsw_errors_without_the_class_name_older_apsw_puts_first() -> None:
    # apsw 3.45 and 3.46 render their errors as "SQLError: near ...": the message is the same from here.
    for text in ('SQLError: near "SELEC": syntax error', 'near "SELEC":\n  syntax error'):
        assert one_line(apsw.SQLError(text)) == 'near "SELEC": syntax error'
    assert one_line(ValueError("SQLError: kept, not apsw's")) == "SQLError: kept, not apsw's"
