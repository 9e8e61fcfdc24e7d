"""Docstring text (the reStructuredText subset the experiments use) to HTML, with math rendered offline.

Handled: paragraphs; bullet lists (``-``, ``*``) and numbered lists
(``1.``); ``.. math::`` blocks and indented formula blocks; inline
``:math:`...```, ``:func:`/:mod:`/:class:`/:meth:`...``` (shown as code,
without the role), double-backtick code, ``**bold**`` and ``*italic*``.
Math is drawn by matplotlib's mathtext into an SVG embedded as a data URI
(no network, no script); an expression mathtext cannot parse is shown as code.
"""
from __future__ import annotations

import base64
import io
import re
from functools import lru_cache

from impediments.report.html import escape

_ROLE = re.compile(r":(func|mod|class|meth|attr|data|obj|exc):`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")
_CODE = re.compile(r"``([^`]+)``")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])")
_BULLET = re.compile(r"^([-*]|\d+\.|\([a-z]\))\s+")


@lru_cache(maxsize=256)
def math_svg(tex: str, *, fontsize: int = 12) -> str | None:
    """``tex`` drawn by matplotlib mathtext as an SVG data URI, or None if mathtext cannot parse it."""
    from matplotlib import mathtext, rcParams
    from matplotlib.font_manager import FontProperties

    buf = io.BytesIO()
    try:
        with _svg_text_as_paths(rcParams):
            mathtext.math_to_image(f"${tex}$", buf, prop=FontProperties(size=fontsize), format="svg")
    except (ValueError, RuntimeError):
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _svg_text_as_paths:
    """Glyphs as paths, so the SVG needs no font on the reader's machine."""

    def __init__(self, rc) -> None:
        self.rc, self.old = rc, None

    def __enter__(self):
        self.old = self.rc["svg.fonttype"]
        self.rc["svg.fonttype"] = "path"

    def __exit__(self, *exc) -> None:
        self.rc["svg.fonttype"] = self.old


# LaTeX delimiters mathtext lacks, and their mathtext spelling
_MATHTEXT = {r"\lVert": r"\Vert", r"\rVert": r"\Vert", r"\lvert": "|", r"\rvert": "|"}


def _math_html(tex: str, *, block: bool = False) -> str:
    drawn = tex.strip()
    for latex, mathtext in _MATHTEXT.items():
        drawn = drawn.replace(latex, mathtext)
    uri = math_svg(drawn, fontsize=14 if block else 12)
    if uri is None:
        return f"<code>{escape(tex)}</code>"
    cls = "math-block" if block else "math"
    return f'<img class="{cls}" alt="{escape(tex)}" src="{uri}">'


def inline(text: str) -> str:
    """One paragraph's inline markup to HTML (escaped)."""
    pieces: list[str] = []
    pos = 0
    for m in _MATH.finditer(text):
        pieces.append(_inline_plain(text[pos:m.start()]))
        pieces.append(_math_html(m.group(1)))
        pos = m.end()
    pieces.append(_inline_plain(text[pos:]))
    return "".join(pieces)


def _inline_plain(text: str) -> str:
    codes: list[str] = []

    def keep(code: str) -> str:
        codes.append(f"<code>{escape(code)}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = _ROLE.sub(lambda m: keep(m.group(2)), text)
    text = _CODE.sub(lambda m: keep(m.group(1)), text)
    text = escape(text)
    text = _BOLD.sub(r"<b>\1</b>", text)
    text = _ITALIC.sub(r"<i>\1</i>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)


def to_html(text: str) -> str:
    """A docstring's body (blocks separated by blank lines) as HTML."""
    out: list[str] = []
    blocks = re.split(r"\n\s*\n", text.strip("\n"))
    math_next = False
    for block in blocks:
        lines = [line.rstrip() for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        stripped = [line.strip() for line in lines]
        if stripped[0].startswith(".. math::"):
            rest = stripped[0][len(".. math::"):].strip()
            body = [rest] if rest else []
            body += stripped[1:]
            if body:
                out.append(f'<div class="formula">{_math_html(" ".join(body), block=True)}</div>')
            else:
                math_next = True
            continue
        if math_next or all(line.startswith((" ", "\t")) for line in lines):
            if math_next:
                out.append(f'<div class="formula">{_math_html(" ".join(stripped), block=True)}</div>')
            else:
                out.append(f'<pre class="formula">{escape(chr(10).join(stripped))}</pre>')
            math_next = False
            continue
        if _BULLET.match(stripped[0]):
            out.append(_list(lines))
            continue
        out.append(f"<p>{inline(' '.join(stripped))}</p>")
    return "\n".join(out)


def _list(lines: list[str]) -> str:
    items: list[list[str]] = []
    numbered = bool(re.match(r"^\d+\.", lines[0].strip()))
    for line in lines:
        m = _BULLET.match(line.strip())
        if m and not line.startswith((" ", "\t")) or (m and not items):
            items.append([line.strip()[m.end():]])
        elif items:
            items[-1].append(line.strip())
    if numbered:  # items separated by blank lines arrive one block at a time: keep their numbers
        start = int(re.match(r"^(\d+)\.", lines[0].strip()).group(1))
        return f'<ol start="{start}">' + "".join(f"<li>{inline(' '.join(item))}</li>" for item in items) + "</ol>"
    return "<ul>" + "".join(f"<li>{inline(' '.join(item))}</li>" for item in items) + "</ul>"
