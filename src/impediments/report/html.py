"""Small helpers for self-contained HTML: escaping, embedded images, figure to PNG."""
from __future__ import annotations

import base64
import html
import io


def escape(text) -> str:
    """HTML-escape ``str(text)``, quotes included."""
    return html.escape(str(text), quote=True)


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI, so the page needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fig_to_png(fig, *, dpi: int = 110, close: bool = True) -> bytes:
    """Render a matplotlib figure to PNG bytes (and close it)."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)
    return buf.getvalue()


def fig_to_data_uri(fig, *, dpi: int = 110) -> str:
    """A matplotlib figure as an embeddable PNG data URI."""
    return png_data_uri(fig_to_png(fig, dpi=dpi))
