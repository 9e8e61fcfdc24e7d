"""A claim's condition, written once: a small expression that is both printed and evaluated.

A :class:`Claim` pairs a statement of the module (or a paper) with the
numbers measured at one seed and a *condition* over those numbers, e.g.
``"acc_std - acc_raw >= 0"``. The condition is parsed by a restricted
evaluator (:class:`Condition`): names of measured numbers, numeric literals,
``+ - * / **``, ``abs``, ``min``, ``max``, ``sqrt``, ``log``, ``log10``, comparisons
(``<, <=, >, >=``, chains allowed) and ``and``. Nothing else parses, so the
printed text is exactly what is checked and no arbitrary code ever runs.

Each comparison is one *quantity* with a *side*: ``a op b`` measures
``a - b`` and claims it is positive (``>``, ``>=``) or ``b - a`` for ``<,
<=``. :mod:`impediments.experiments.verdict` turns the per-seed values of
each quantity into a mean, a 95 % interval and a verdict.
"""
from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

FUNCTIONS = {"abs": abs, "min": min, "max": max, "sqrt": math.sqrt, "log": math.log, "log10": math.log10}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: _divide(a, b), ast.Pow: lambda a, b: a ** b}
_SIDES = {ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<="}


def _divide(a: float, b: float) -> float:
    if b == 0:
        return math.copysign(math.inf, a) if a else math.nan
    return a / b


class ConditionError(ValueError):
    """A condition uses something outside the restricted grammar, or an unknown name."""


@dataclass(frozen=True)
class Quantity:
    """One comparison of a condition: ``left side right``, measured as a margin that is positive when it holds.

    Attributes:
        text: the comparison as written, e.g. ``"acc_std - acc_raw >= 0"``.
        margin_text: the quantity claimed positive (or non-negative), e.g. ``"acc_std - acc_raw"``.
        side: the comparison as written: ``">"``, ``">="``, ``"<"`` or ``"<="``.
        inclusive: whether a margin of exactly zero satisfies it (``>=``, ``<=``).
    """

    text: str
    margin_text: str
    side: str
    inclusive: bool
    left: ast.expr = field(repr=False, compare=False)
    right: ast.expr = field(repr=False, compare=False)

    @property
    def margin_side(self) -> str:
        """The claimed side of the margin: ``">= 0"`` or ``"> 0"``."""
        return ">= 0" if self.inclusive else "> 0"

    def margin(self, values: Mapping[str, float]) -> float:
        """``left - right`` for ``>``/``>=``, ``right - left`` for ``<``/``<=``: positive means it holds."""
        a, b = _value(self.left, values), _value(self.right, values)
        d = a - b if self.side in (">", ">=") else b - a
        return math.nan if (math.isinf(a) and math.isinf(b) and a == b) else float(d)


class Condition:
    """A parsed condition: a conjunction of :class:`Quantity` comparisons over named numbers.

    Raises:
        ConditionError: for any construct outside the grammar, naming it.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise ConditionError(f"condition {text!r} is not an expression: {exc.msg}") from None
        parts = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
        self.quantities: list[Quantity] = []
        for part in parts:
            if not isinstance(part, ast.Compare):
                raise ConditionError(f"condition {text!r}: each part joined by 'and' must be a comparison, "
                                     f"got {ast.unparse(part)!r}")
            operands = [part.left, *part.comparators]
            for op, left, right in zip(part.ops, operands, operands[1:]):
                if type(op) not in _SIDES:
                    raise ConditionError(f"condition {text!r}: comparison {type(op).__name__} not allowed; "
                                         "valid: <, <=, >, >=")
                _check(left, text)
                _check(right, text)
                side = _SIDES[type(op)]
                hi, lo = (left, right) if side in (">", ">=") else (right, left)
                lo_text = ast.unparse(lo)
                if isinstance(lo, ast.BinOp) and isinstance(lo.op, (ast.Add, ast.Sub)):
                    lo_text = f"({lo_text})"
                margin_text = ast.unparse(hi) if _is_zero(lo) else f"{ast.unparse(hi)} - {lo_text}"
                self.quantities.append(Quantity(text=f"{ast.unparse(left)} {side} {ast.unparse(right)}",
                                                margin_text=margin_text, side=side, inclusive=side in (">=", "<="),
                                                left=left, right=right))

    @property
    def names(self) -> set[str]:
        out: set[str] = set()
        for q in self.quantities:
            for node in (q.left, q.right):
                out |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id not in FUNCTIONS}
        return out

    def margins(self, values: Mapping[str, float]) -> list[float]:
        missing = self.names - set(values)
        if missing:
            raise ConditionError(f"condition {self.text!r} names {', '.join(sorted(missing))}, not measured; "
                                 f"measured: {', '.join(values)}")
        return [q.margin(values) for q in self.quantities]

    def holds(self, values: Mapping[str, float]) -> bool:
        """Whether every comparison holds at these values (one seed)."""
        return all(m > 0 or (m == 0 and q.inclusive) for q, m in zip(self.quantities, self.margins(values)))


def _is_zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0


def _check(node: ast.expr, text: str) -> None:
    for n in ast.walk(node):
        if isinstance(n, ast.Call):
            if not (isinstance(n.func, ast.Name) and n.func.id in FUNCTIONS) or n.keywords:
                raise ConditionError(f"condition {text!r}: call {ast.unparse(n)!r} not allowed; "
                                     f"valid functions: {', '.join(FUNCTIONS)}")
        elif isinstance(n, ast.BinOp):
            if type(n.op) not in _BINARY:
                raise ConditionError(f"condition {text!r}: operator {type(n.op).__name__} not allowed")
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, (ast.USub, ast.UAdd)):
                raise ConditionError(f"condition {text!r}: operator {type(n.op).__name__} not allowed")
        elif isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, (int, float)):
                raise ConditionError(f"condition {text!r}: literal {n.value!r} not allowed (numbers only)")
        elif not isinstance(n, (ast.Name, ast.Load, ast.operator, ast.unaryop)):
            raise ConditionError(f"condition {text!r}: {type(n).__name__} {ast.unparse(n)!r} not allowed")


def _value(node: ast.expr, values: Mapping[str, float]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return float(values[node.id])
    if isinstance(node, ast.UnaryOp):
        v = _value(node.operand, values)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        return float(_BINARY[type(node.op)](_value(node.left, values), _value(node.right, values)))
    if isinstance(node, ast.Call):
        return float(FUNCTIONS[node.func.id](*[_value(a, values) for a in node.args]))
    raise ConditionError(f"cannot evaluate {ast.unparse(node)!r}")  # unreachable after _check


@lru_cache(maxsize=512)
def parse(text: str) -> Condition:
    """The parsed :class:`Condition` of ``text`` (cached)."""
    return Condition(text)


def _number(v) -> float | int | bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, torch.Tensor):
        v = v.item()
    return float(v)


@dataclass(frozen=True)
class Claim:
    """One statement of the module (or a paper) and the numbers measured for it at one seed.

    Attributes:
        text: the claim as the module or paper states it; where the effect is
            scaled down or a qualitative statement is turned into a quantity, the text says why.
        source: where it comes from, e.g. ``"seed: Initialization"`` or ``"He et al. 2015"``.
        measured: the numbers the condition reads, by name.
        condition: the expression checked (see :class:`Condition`); parsed when the claim is made.
        labels: a short human label for each measured name (shown instead of the name).
        paper: the paper's or module's own number, as text (``""`` when it gives none).
        inconclusive_reason: why the verdict may be inconclusive at this scale (shown when it is).
    """

    text: str
    source: str
    measured: dict[str, float]
    condition: str
    labels: dict[str, str] = field(default_factory=dict)
    paper: str = ""
    inconclusive_reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "measured", {str(k): _number(v) for k, v in dict(self.measured).items()})
        object.__setattr__(self, "labels", {str(k): str(v) for k, v in dict(self.labels).items()})
        unknown = set(self.labels) - set(self.measured)
        if unknown:
            raise ConditionError(f"labels for unmeasured names {sorted(unknown)}; measured: {list(self.measured)}")
        parse(self.condition).margins(self.measured)  # fails now, not at verdict time, for an unknown name

    @property
    def passed(self) -> bool:
        """Whether the condition holds at this one seed (the verdict over seeds is the runner's)."""
        return parse(self.condition).holds(self.measured)

    def to_dict(self) -> dict:
        return {"text": self.text, "source": self.source, "measured": dict(self.measured),
                "condition": self.condition, "labels": dict(self.labels), "paper": self.paper,
                "inconclusive_reason": self.inconclusive_reason}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Claim":
        return cls(text=d["text"], source=d["source"], measured=dict(d["measured"]), condition=d["condition"],
                   labels=dict(d.get("labels", {})), paper=d.get("paper", ""),
                   inconclusive_reason=d.get("inconclusive_reason", ""))


def claim(text: str, source: str, measured: Mapping[str, float], condition: str, *,
          labels: Mapping[str, str] | None = None, paper: str = "", inconclusive_reason: str = "") -> Claim:
    """Shorthand for :class:`Claim` (keeps experiment code short)."""
    return Claim(text=text, source=source, measured=dict(measured), condition=condition,
                 labels=dict(labels or {}), paper=paper, inconclusive_reason=inconclusive_reason)
