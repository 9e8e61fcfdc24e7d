"""The transformers sweep of the calibration benchmark (issue 25): every model type ``transformers``
builds from a config, healthy and with init std 1.0 and lr 1.0, through ``imp.checkup`` and
``imp.watch``. See ``benchmarks/calibration/hf_sweep.py``; the table goes to
``benchmarks/calibration/hf_sweep.md``.

Usage::

    python benchmarks/hf_sweep.py [--jobs 2] [--steps 40] [--only TYPE ...] [--all-heads] [--held-out]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration.hf_sweep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
