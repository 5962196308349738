"""The documentation as the tests read it: README.md and the hand-written pages in docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def page(name: str) -> str:
    """``README.md`` or ``docs/<name>``'s text."""
    return (ROOT / name if name == "README.md" else ROOT / "docs" / name).read_text(encoding="utf-8")


def section(title: str, name: str | None = None) -> str:
    """The text under the heading ``title`` (any level, in README.md or a docs page, or only in page
    ``name``; exactly one must have it), up to the next heading of the same or a higher level."""
    found = []
    for path in PAGES if name is None else [ROOT / name if name == "README.md" else ROOT / "docs" / name]:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(rf"^(#+) {re.escape(title)}\n", text, re.M):
            level = len(match.group(1))
            rest = text[match.end():]
            end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
            found.append(rest[:end.start()] if end else rest)
    assert len(found) == 1, f"{len(found)} headings '{title}' in the documentation"
    return found[0]
