"""Reports: the lab notebook and other self-contained HTML pages (may import matplotlib)."""
