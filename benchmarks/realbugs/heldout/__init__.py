"""The held-out part of the real-bug corpus: gated on reproduction, never tuned on (see ``../HELDOUT.md``)."""
