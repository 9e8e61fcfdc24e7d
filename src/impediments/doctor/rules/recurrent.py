r"""Gradients through time in ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (:class:`~impediments.monitor.schema.RecurrentStats`).

The monitor measures :math:`e_k`, the gradient energy of the last output with respect to the input
``k`` steps before it, relative to ``k = 0`` (:mod:`impediments.monitor.probes.recurrent.probe`). The *horizon* is
the last ``k`` before :math:`e_k` drops below ``through_time_floor`` (float32 resolution squared):
beyond it, an input's contribution to the weight gradient is lost in rounding, so no dependency
longer than the horizon can be learned (Bengio, Simard & Frasconi 1994; Hochreiter 1991).

How far back a task needs to look is not known to the doctor, so a horizon shorter than the sequence
is ``info`` (a next-token task may need one step); it is a ``warning`` only when not even the
previous step is reached: the recurrence then passes no usable gradient at all and the network
learns as a feed-forward one.

The opposite failure is the one Pascanu, Mikolov & Bengio (2013) analyse: when the recurrent
Jacobian's norm exceeds 1, :math:`e_k` *grows* geometrically with ``k``. An RNN unrolled in time is a
deep network whose layers share weights, so the bound is the one used across depth
(``gradient_var_ratio``, :mod:`impediments.doctor.rules.gradients`): once
:math:`\max_k e_k > r` the weight gradient is dominated by the most distant inputs, one learning rate
cannot suit the near and the far terms, and the total gradient norm is dominated by them (clipping
then rescales every step). It is a ``warning`` (``exploding_gradients``).
"""
from __future__ import annotations

import math

from impediments.doctor.rules.base import finding, rule

_EXPLANATION = ("The gradient from an output shrinks at every step it travels back through the recurrence "
                "(the recurrent Jacobian's norm below 1: saturated or closed gates, small recurrent weights), so "
                "inputs further back than the horizon get no usable gradient: dependencies that long cannot be "
                "learned.")
_REMEDY = {
    "LSTM": "Set the forget-gate bias to 1 (Gers et al. 2000; Jozefowicz et al. 2015: bias_ih/bias_hh rows "
            "hidden_size:2*hidden_size), use orthogonal recurrent weights (nn.init.orthogonal_ on each weight_hh "
            "block), or truncate backpropagation to the horizon",
    "GRU": "Use orthogonal recurrent weights (nn.init.orthogonal_ on each weight_hh block) and bias the update "
           "gate toward keeping the state, or truncate backpropagation to the horizon",
}
_EXPLODING = ("The gradient from an output grows at every step it travels back through the recurrence (the recurrent "
              "Jacobian's norm above 1, as with large recurrent weights), so the most distant inputs dominate the "
              "weight gradient and its norm: updates are erratic (gradient clipping, if used, rescales nearly every "
              "step).")
_EXPLODING_REMEDY = ("Use the recurrent layer's default init (PyTorch: U(-1/sqrt(hidden), 1/sqrt(hidden))) or orthogonal "
                     "recurrent weights (nn.init.orthogonal_ on each weight_hh block) so the recurrent Jacobian's norm "
                     "stays near 1, clip the gradient norm (Pascanu et al. 2013), or lower the learning rate")
_REMEDY_RNN = ("Use an LSTM or GRU, or an identity/orthogonal recurrent matrix with ReLU (Le et al. 2015, IRNN); "
               "or truncate backpropagation to the horizon")


def horizon(energy: list[float], floor: float) -> int:
    """The last ``k`` whose relative energy is at least ``floor`` (contiguously from ``k = 0``)."""
    for k, e in enumerate(energy):
        if not (isinstance(e, float) and math.isfinite(e)) or e < floor:
            return k - 1
    return len(energy) - 1


def _seen(stats, r, name) -> dict:
    return {"seen": {"sampled_forwards": r.samples, "steps": stats.steps},
            "confidence": (f"measured by one backward of a random projection of the last output of {name} on each "
                           f"of {r.samples} sampled forwards, averaged")}


def _exploding(stats, th, name, r, energy):
    """``exploding_gradients`` when the energy ``k`` steps back exceeds the across-depth bound, else None."""
    finite = [(k, e) for k, e in enumerate(energy) if isinstance(e, float) and math.isfinite(e)]
    k_max, e_max = max(finite, key=lambda ke: ke[1])
    if not e_max > th.gradient_var_ratio:
        return None
    return finding(
        "exploding_gradients", "warning", [name],
        {"max_energy_steps_back": e_max, "at_steps_back": k_max, "sequence_length": len(energy),
         "growth_per_step": e_max ** (1.0 / k_max), "threshold": th.gradient_var_ratio,
         "energy_1_step_back": energy[1]},
        _EXPLODING, _EXPLODING_REMEDY, **_seen(stats, r, name))


@rule("vanishing_gradients", "exploding_gradients", requires=())
def gradients_through_time(stats, th):
    """The gradient through time reaches fewer steps back than the sequences are long, or grows with each step."""
    out = []
    for name, r in stats.recurrent.items():
        energy = r.energy_by_steps_back
        if r.samples == 0 or len(energy) < 2 or not (isinstance(energy[0], float) and energy[0] > 0):
            continue
        exploding = _exploding(stats, th, name, r, energy)
        if exploding is not None:
            out.append(exploding)
            continue
        h = horizon(energy, th.through_time_floor)
        if h >= len(energy) - 1:
            continue
        severity = "warning" if h < 1 else "info"
        out.append(finding(
            "vanishing_gradients", severity, [name],
            {"horizon_steps": h, "sequence_length": len(energy), "floor": th.through_time_floor,
             "energy_1_step_back": energy[1], f"energy_{len(energy) - 1}_steps_back": energy[-1]},
            _EXPLANATION, _REMEDY.get(r.kind, _REMEDY_RNN), **_seen(stats, r, name)))
    return out
