"""Help wrapped by the columns a terminal gives each character, not by their count.

argparse wraps with :mod:`textwrap`, which counts characters: a line of Chinese help comes out
twice as wide as intended, since a terminal gives each CJK character two columns.  Text with
no wide character is left to argparse as it is, so English help keeps its exact layout.
"""

from __future__ import annotations

import argparse
import re
import unicodedata

__all__ = ["cell_width", "use_cell_width", "wrap_cells"]

# a wide character is a token of its own (a line may break between two of them); other
# characters form words that break only at white space, as textwrap does
_TOKEN = re.compile(r"\s+|[^\s]")
_NO_LINE_START = frozenset("，。；：、）」』”’！？》〉】,.;:)!?")


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def cell_width(text: str) -> int:
    """Columns ``text`` takes on a terminal."""
    return sum(2 if _wide(c) else 1 for c in text)


def _tokens(text: str) -> list[str]:
    """Words, single wide characters and single spaces, in order."""
    out: list[str] = []
    word = ""
    for piece in _TOKEN.findall(text):
        if piece.isspace() or _wide(piece):
            if word:
                out.append(word)
                word = ""
            out.append(" " if piece.isspace() else piece)
        else:
            word += piece
    if word:
        out.append(word)
    return out


def wrap_cells(text: str, width: int) -> list[str]:
    """``text`` (white space already collapsed) in lines of at most ``width`` columns; a word
    longer than that stands on a line of its own, and closing punctuation never starts one
    (the character before it goes down with it)."""
    lines: list[str] = []
    line = ""
    for piece in _tokens(text):
        if piece == " ":
            line += " " if line else ""
            continue
        fits = cell_width(line) + cell_width(piece) <= width
        if fits or not line.strip():
            line += piece
            continue
        if piece in _NO_LINE_START:  # take the character before it along to the next line
            if len(line.strip()) > 1 and _wide(line[-1]):
                lines.append(line[:-1].rstrip())
                line = line[-1] + piece
            else:
                line += piece
            continue
        lines.append(line.rstrip())
        line = piece
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _has_wide(text: str) -> bool:
    return any(_wide(c) for c in text)


class CellWidthHelpFormatter(argparse.HelpFormatter):
    def _split_lines(self, text: str, width: int) -> list[str]:
        if not _has_wide(text):
            return super()._split_lines(text, width)
        return wrap_cells(self._whitespace_matcher.sub(" ", text).strip(), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if not _has_wide(text):
            return super()._fill_text(text, width, indent)
        flat = self._whitespace_matcher.sub(" ", text).strip()
        return "\n".join(indent + line for line in wrap_cells(flat, width - len(indent)))


class RawDescriptionCellWidthHelpFormatter(
    CellWidthHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return argparse.RawDescriptionHelpFormatter._fill_text(self, text, width, indent)


def use_cell_width(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the formatter of its kind that wraps by columns."""
    if parser.formatter_class is argparse.RawDescriptionHelpFormatter:
        parser.formatter_class = RawDescriptionCellWidthHelpFormatter
    elif parser.formatter_class is argparse.HelpFormatter:
        parser.formatter_class = CellWidthHelpFormatter
