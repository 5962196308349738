"""Numbers and tables as the studies write them, and the layout of their JSON files.

One helper per job: ``cell`` formats every number a study's table shows (with its ± and its
sign where asked, ``-`` where there is none), ``rho`` a rank correlation with its p-value,
``markdown_table`` the table around the cells, ``dump_json`` the summary files, ``fill_copied_blocks``
the pages that show a study's output verbatim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence


def cell(value: float | None, digits: int = 1, *, spread: float | None = None, sign: bool = False,
         missing: str = "-") -> str:
    """``value`` to ``digits`` decimals (with its sign always shown if ``sign``), then
    `` ± spread`` when a spread (a standard error or sd) is given; ``missing`` when value is None.

    >>> cell(1.23456, 2), cell(None), cell(0.5, 2, sign=True), cell(2.0, 1, spread=0.3), cell(None, missing="n/a")
    ('1.23', '-', '+0.50', '2.0 ± 0.3', 'n/a')
    """
    if digits < 0:
        raise ValueError(f"digits must be >= 0, got {digits}")
    if value is None:
        return missing
    text = f"{value:{'+' if sign else ''}.{digits}f}"
    return text if spread is None else f"{text} ± {spread:.{digits}f}"


def rho(value: float | None, p: float | None = None) -> str:
    """A rank correlation to two decimals with its sign, and its p-value when given
    (``undefined`` when the correlation is: a constant side).

    >>> rho(0.8, 0.0833), rho(-1.0), rho(None)
    ('+0.80 (p = 0.083)', '-1.00', 'undefined')
    """
    text = cell(value, 2, sign=True, missing="undefined")
    return text if value is None or p is None else f"{text} (p = {p:.3f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """The lines of a markdown table: its first ``left`` columns aligned left, the rest right.

    >>> markdown_table(["model", "eRank"], [["a", "1.0"]])
    ['| model | eRank |', '|---|---:|', '| a | 1.0 |']
    """
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells")
    align = ["---"] * min(left, len(header)) + ["---:"] * max(len(header) - left, 0)
    return [f"| {' | '.join(header)} |", f"|{'|'.join(align)}|", *(f"| {' | '.join(row)} |" for row in rows)]


def dump_json(obj) -> str:
    """Indented JSON with every list of scalars on one line (JSON strings hold no raw newlines).

    >>> print(dump_json({"a": [1, 2], "b": {"c": None}}), end="")
    {
     "a": [1, 2],
     "b": {
      "c": null
     }
    }
    """
    def inline(match):
        return "[" + re.sub(r"\n\s*", " ", match.group(1)).strip() + "]"
    return re.sub(r"\[([^\[\]{}]*)\]", inline, json.dumps(obj, indent=1)) + "\n"


COPIED_BLOCK = re.compile(r"(<!-- copied from (?P<source>\S+) -->\n)(?P<body>.*?)(\n<!-- end of (?P=source) -->)", re.S)


def copied_blocks(page: str) -> list[tuple[str, str]]:
    """``(source, body)`` of every ``<!-- copied from SOURCE -->`` .. ``<!-- end of SOURCE -->`` block of a page.

    >>> copied_blocks("a\\n<!-- copied from x.md -->\\n| 1 |\\n<!-- end of x.md -->\\nb")
    [('x.md', '| 1 |')]
    """
    return [(m["source"], m["body"]) for m in COPIED_BLOCK.finditer(page)]


def fill_copied_blocks(page: str, read: Callable[[str], str]) -> str:
    """``page`` with every copied block's body replaced by ``read(SOURCE)``, stripped; a page copies a
    study's output through these blocks so that nothing in it is retyped.

    >>> fill_copied_blocks("<!-- copied from x.md -->\\nold\\n<!-- end of x.md -->", lambda source: "new\\n")
    '<!-- copied from x.md -->\\nnew\\n<!-- end of x.md -->'
    """
    return COPIED_BLOCK.sub(lambda m: m[1] + read(m["source"]).strip() + m[4], page)
