"""The recurrent probe: gates of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` as activations, and the gradient
through time.

On a sampled step, every gate's pre-activation is recomputed (:mod:`.gates`, :mod:`.packed`, with the
layers and dropout masks replayed by :mod:`.replay`) and handed to the activation probe as an
activation named ``"{module}/l{layer}[_reverse].{gate}"``; the gradient energy per step back is measured
by :mod:`.gradient` (Pascanu et al. 2013). What cannot be recomputed is named under "not checked".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from impediments.monitor.probes.base import Probe
from impediments.monitor.probes.recurrent import gates as R
from impediments.monitor.probes.recurrent import packed as P
from impediments.monitor.probes.recurrent import replay as L
from impediments.monitor.probes.recurrent.gradient import grad_energy_through_time
from impediments.monitor.state.bag import Field


@dataclass
class RecurrentStats:
    """Gradient through time of one ``nn.LSTM``/``nn.GRU``/``nn.RNN``.

    ``energy_by_steps_back[k]``: the gradient energy of a random projection of the last output with
    respect to the input ``k`` steps before it, over that at ``k = 0`` (so element 0 is 1), averaged
    over the sampled steps; ``sequences[k]``: how many sampled forwards were long enough to reach ``k``.
    """

    kind: str
    samples: int
    energy_by_steps_back: list[float]
    sequences: list[int]


class RecurrentProbe(Probe):
    """Gates and gradient through time of recurrent modules (see the module docstring).

    Args:
        ctx: the monitor's context.
        activations: the activation probe the gates are handed to.
    """

    key = "rnn"
    ENERGY = Field("energy", "sum")
    SEEN = Field("seen", "sum")
    SAMPLES = Field("samples", "count")

    def __init__(self, ctx, activations) -> None:
        super().__init__(ctx)
        self.activations = activations

    @staticmethod
    def is_recurrent(module: nn.Module) -> bool:
        return R.is_recurrent(module)

    @staticmethod
    def before(module: nn.Module, args) -> None:
        """Just before a sampled forward of a recurrent module: save the random state its dropout uses."""
        L.before(module, args)

    def record(self, name: str, module: nn.RNNBase, args, out) -> None:
        """On a sampled step: hand every gate's pre-activation and value to the activation probe, and
        name under "not checked" what cannot be recomputed."""
        ctx = self.ctx
        not_checked = ctx.not_checked
        packed = bool(args) and isinstance(args[0], PackedSequence)
        if not args or not (packed or isinstance(args[0], torch.Tensor)):
            return
        gates_of = P.gate_preactivations if packed else R.gate_preactivations
        energy_of = P.grad_energy_through_time if packed else grad_energy_through_time
        if type(module) not in (nn.LSTM, nn.GRU, nn.RNN):
            not_checked[f"{name}/gates"] = f"{type(module).__name__}: a subclass of {module.mode} is not recomputed"
            return
        output = out[0] if isinstance(out, tuple) and isinstance(out[0], (torch.Tensor, PackedSequence)) else None
        rng_state = L.RNG_BEFORE.pop(module, None)
        try:
            gates = gates_of(module, args[0], _initial(args), output, rng_state=rng_state)
            device = (args[0].data if packed else args[0]).device
            if rng_state is not None and device.type != "cpu":
                not_checked[f"{name}/dropout_replay"] = (
                    f"on {device.type} the replayed dropout masks of layers 1..{module.num_layers - 1} are not "
                    "compared with the module's output (that would read a value back every sampled step)")
        except L.MasksNotReplayed:
            gates = gates_of(module, args[0], _initial(args), output, layers=1)
            not_checked[f"{name}/gates_above_l0"] = (
                f"inter-layer dropout {module.dropout:g}: its masks could not be replayed, so the inputs of layers "
                f"1..{module.num_layers - 1} are unknown")
        energy = energy_of(module, args[0], _initial(args))
        bag = ctx.state().bag(self.key, name)
        bag.add(self.ENERGY, energy.double())
        bag.add(self.SEEN, torch.ones_like(energy, dtype=torch.float64))
        bag.count(self.SAMPLES)
        self.meta[name] = {"kind": module.mode}
        acts = self.activations
        layer_depth: dict[str, int] = {}
        for gate, (kind, is_gate, z) in gates.items():
            z = _by_example(z, packed)
            token = acts.record_input(f"{name}/{gate}", kind, z)
            if token is None:
                continue
            meta = acts.meta[f"{name}/{gate}"]
            # one depth per stacked layer: its gates, candidate and cell are computed side by side from the
            # same input, not one after another, so a trend along depth must not read them as five layers
            meta["depth"] = layer_depth.setdefault(gate.split(".")[0], meta["depth"])
            if is_gate:
                meta["gate"] = True
            acts.record_output(token, _apply(kind, z))

    def _layer(self, meta: dict, bag) -> RecurrentStats:
        """Mean gradient energy per step back over the sampled forwards that reached it, relative to k = 0."""
        energy, seen = bag.read(self.ENERGY).cpu(), bag.read(self.SEEN).cpu()
        mean = (energy / seen.clamp_min(1)).tolist()
        base = mean[0] if mean and mean[0] > 0 else float("nan")
        return RecurrentStats(kind=meta["kind"], samples=bag.read(self.SAMPLES),
                              energy_by_steps_back=[m / base for m in mean], sequences=[int(c) for c in seen.tolist()])

    def stats(self, total, windows) -> dict:
        return {"recurrent": {n: self._layer(m, total[(self.key, n)]) for n, m in self.meta.items()
                              if (self.key, n) in total}}


def _by_example(z: torch.Tensor, packed: bool) -> torch.Tensor:
    """``(sequences, steps, units)``: one example per sequence, its steps the values per example (they
    are not independent draws, which the dead-unit chance computation must not assume). Packed rows
    ``(rows, units)`` stay as they are; an unbatched ``(steps, units)`` is one sequence."""
    if z.dim() == 3:
        return z.transpose(0, 1).contiguous()
    return z if packed else z.unsqueeze(0)


def _initial(args):
    """The initial state as passed to the forward (``h0``, ``(h0, c0)``, or None for zeros)."""
    return args[1] if len(args) > 1 else None


def _apply(kind: str, z: torch.Tensor) -> torch.Tensor:
    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[kind](z)
