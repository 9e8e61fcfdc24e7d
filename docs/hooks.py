"""MkDocs hook: the doctor's codes page, generated at build time from ``doctor/codes.py`` and
``doctor/thresholds.py`` so it cannot drift from them (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

``docs/codes.md`` holds the marker ``<!-- generated: codes -->``; :func:`on_page_markdown` replaces it. The
home page (``docs/index.md``, marker ``<!-- generated: readme -->``) is the README, its links rewritten to the
site's pages, so the front door is written once.
"""
from __future__ import annotations

import re
from pathlib import Path

MARKER = "<!-- generated: codes -->"
README_MARKER = "<!-- generated: readme -->"
ROOT = Path(__file__).resolve().parent.parent


def readme_markdown() -> str:
    """The README with ``docs/X.md`` links made site links and links to files outside ``docs/`` made code
    (``examples/README.md``), since the site does not carry them; ``CHANGELOG.md`` is the site's changelog page."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = text.replace("](docs/", "](").replace("](CHANGELOG.md)", "](changelog.md)")
    return re.sub(r"\[([^\]]+)\]\((?!https?:|[a-z_]+\.md)([^)]+)\)", r"`\2`", text)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def codes_markdown() -> str:
    """One section per code (meaning, why it stops learning, remedy, where it is shown, reference), then
    every threshold with its default and its reason."""
    from impediments.doctor.codes import CODES
    from impediments.doctor.thresholds import Thresholds

    out = [f"{len(CODES)} codes, in the catalogue's order.", "",
           "| code | meaning | shown by |", "|---|---|---|"]
    out += [f"| [`{c.name}`](#{c.name}) | {_cell(c.summary)} | `{c.see.removeprefix('see: ')}` |"
            for c in CODES.values()]
    for c in CODES.values():
        out += ["", f"## `{c.name}` {{#{c.name}}}", "", f"**{c.summary[:1].upper()}{c.summary[1:]}.**", ""]
        if c.explanation:
            out += [f"*Why it stops learning:* {c.explanation}", ""]
        if c.remedy:
            out += [f"*What to change:* {c.remedy}", ""]
        out += [f"*Shown by:* `{c.see.removeprefix('see: ')}`. *Reference:* {c.reference}."]
    out += ["", "## Thresholds", "",
            "Every threshold the rules use, with its default and its reason (`doctor/thresholds.py`); override "
            "one with `--threshold NAME=VALUE` or `diagnose(stats, {\"NAME\": VALUE})`.", "",
            "| threshold | default | reason |", "|---|---|---|"]
    out += [f"| `{t['name']}` | `{t['value']!r}` | {_cell(t['reason'])} |" for t in Thresholds().describe()]
    return "\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, codes_markdown())
    if README_MARKER in markdown:
        markdown = markdown.replace(README_MARKER, readme_markdown())
    return markdown
