"""Recurrent modules, whose gates run inside one fused op: the probe (:mod:`.probe`), the gates
recomputed (:mod:`.gates`, :mod:`.packed` for ``PackedSequence``), their layers and dropout masks
replayed (:mod:`.replay`), and the gradient through time (:mod:`.gradient`)."""
