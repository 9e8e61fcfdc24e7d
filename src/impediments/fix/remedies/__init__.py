"""Remedies as code: small functions from a setup's :class:`~impediments.fix.pieces.Pieces` to new pieces.

A remedy ``fn(pieces, context) -> Change`` returns new pieces (factories that wrap
the old ones; nothing is edited in place) and the change as a short code snippet.
It raises :class:`NotApplicable` with the reason when it cannot apply to this
setup (e.g. Fixup without residual blocks, an activation called functionally).

:data:`REMEDIES` maps a remedy's name to it; :func:`remedies_for` lists the
remedies of a doctor code. Codes the doctor does not (yet) define are skipped,
so the registry can name remedies for codes other modules add later.

Every remedy has a ``slot`` (what it changes); a combination takes at most one
remedy per slot and applies them in :data:`SLOT_ORDER` (data first, then the
model's structure, then its init, then the optimizer and the loop).
"""
from __future__ import annotations

from impediments.fix.remedies.base import SLOT_ORDER, Change, Context, NotApplicable, Remedy, apply_all
from impediments.fix.remedies.registry import REMEDIES, continuation, remedies_for

__all__ = ["REMEDIES", "SLOT_ORDER", "Change", "Context", "NotApplicable", "Remedy", "apply_all", "continuation",
           "remedies_for"]
