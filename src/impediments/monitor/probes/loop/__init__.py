"""The training loop: the probe (:mod:`.probe`) and the loss-function calls it sees (:mod:`.loss_calls`)."""
