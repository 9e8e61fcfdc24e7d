"""``impediments fix``: try the doctor's remedies on copies of a setup, retrain, re-diagnose, show what helped.

>>> report = imp.fix(model_fn, "digits", steps=100, jobs=2)   # doctest: +SKIP
>>> print(report); print(report.snippet()); impediments.report.render_fix_html(report, "fix.html")   # doctest: +SKIP

Layout::

    pieces.py     the setup as factories and tensors (never edited in place)
    surgery.py    replace submodules by name; find functional activations that cannot be swapped
    remedies/     remedies as small functions, registered per doctor code
    trial.py      one run: build, train under the monitor, evaluate, diagnose
    verdict.py    verified fix or not, ranking, the combination to try
    runner.py     fix() / run_fix(): baseline, remedies in worker processes, combination
    report.py     FixReport (JSON, HTML)         table.py   the text table
"""
import sys

from impediments.fix.pieces import Pieces, make_pieces
from impediments.fix.remedies import REMEDIES, NotApplicable, Remedy, remedies_for
from impediments.fix.report import FixReport
from impediments.fix.runner import FixError, fix, run_fix
from impediments.fix.surgery import functional_activations, replace_module, swap_modules

__all__ = ["REMEDIES", "FixError", "FixReport", "NotApplicable", "Pieces", "Remedy", "fix", "functional_activations",
           "make_pieces", "remedies_for", "replace_module", "run_fix", "swap_modules"]


class _CallableModule(type(sys.modules[__name__])):
    """``imp.fix(...)`` calls :func:`fix`, while ``imp.fix.replace_module`` etc. stay the package's names.

    (A package attribute of the same name as its parent's function would be overwritten by the import
    system as soon as the package is imported, so the package itself is made callable.)
    """

    def __call__(self, *args, **kwargs) -> FixReport:
        return fix(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
