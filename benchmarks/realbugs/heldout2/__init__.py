"""The second held-out part of the real-bug corpus (issue 24): ported, with the expected finding written,
and gated on reproduction, all without running the doctor on any of them (see ``../HELDOUT2.md``)."""
