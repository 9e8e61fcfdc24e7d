"""``fix()``: diagnose the setup, try each remedy on fresh copies, re-diagnose, judge, combine.

1. The baseline: the setup as is, trained under the monitor and diagnosed (one run per seed).
2. For each code flagged at warning or error, its remedies (:mod:`~impediments.fix.remedies`),
   each applied to a fresh build under the same seeds and budget, in ``jobs`` worker processes.
3. Each trial is re-diagnosed and evaluated on the validation split; :mod:`~impediments.fix.verdict`
   decides which remedies are verified fixes.
4. The best verified remedy of each code, at most one per slot, is tried together; the combination is
   chosen when it is verified for every code its parts fixed, else the best single verified fix.
"""
from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from itertools import zip_longest

from impediments._interrupt import ctrl_c_stops_the_run, ignore_sigint, sigint_ignored, terminate
from impediments.fix.pieces import Pieces, make_pieces
from impediments.fix.remedies import REMEDIES, continuation, remedies_for
from impediments.fix.remedies.registry import extent
from impediments.fix.report import FixReport, Row
from impediments.fix.trial import Trial, run_trial
from impediments.fix.verdict import (accuracy_tolerance, best_combination, judge, min_evidence_steps, rank_key,
                                    root_cause)


class FixError(ValueError):
    """The setup itself cannot be trained (the baseline failed); the message says why."""


class PiecesSource:
    """``() -> pieces``: a source over pieces built in this process (picklable when their factories are)."""

    def __init__(self, pieces: Pieces):
        self.pieces = pieces

    def __call__(self) -> Pieces:
        return self.pieces


class _Workers:
    """Runs ``run_trial(*task)`` for a list of tasks: in this process, or in ``jobs`` spawned workers.

    The worker pool is started on first use and kept for every round of one ``run_fix`` (starting a
    worker imports torch, seconds each); :meth:`close` ends it. A setup that does not pickle runs here,
    with a note saying so.
    """

    def __init__(self, jobs: int, notes: list[str], progress: Callable | None):
        self.jobs, self.notes, self.progress, self.pool, self.others = jobs, notes, progress, None, set()

    def run(self, tasks: list[tuple]) -> list[Trial]:
        if self.jobs > 1 and len(tasks) > 1 and self.pool is None:
            try:
                pickle.dumps(tasks[0])
            except Exception as exc:
                self.notes.append(f"ran in this process, not {self.jobs} workers: the setup does not pickle "
                                  f"({type(exc).__name__}: {exc})")
                self.jobs = 1
        out = []
        if self.jobs <= 1 or (len(tasks) <= 1 and self.pool is None):
            for task in tasks:
                out.append(run_trial(*task))
                self._report(out[-1])
            return out
        if self.pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.others = set(multiprocessing.active_children())  # the caller's own, left alone on Ctrl-C
            self.pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=ignore_sigint)
        with sigint_ignored():  # workers spawned now inherit SIG_IGN: Ctrl-C reaches this process only
            futures = [self.pool.submit(run_trial, *task) for task in tasks]
        for future in futures:
            out.append(future.result())
            self._report(out[-1])
        return out

    def _report(self, trial: Trial) -> None:
        if self.progress is not None:
            self.progress(trial)

    def close(self, interrupted: bool = False) -> None:
        """End the pool: let it finish, or (``interrupted``) cancel what is queued and terminate the workers."""
        if self.pool is None:
            return
        if interrupted:
            import multiprocessing

            with sigint_ignored():
                self.pool.shutdown(wait=False, cancel_futures=True)
                terminate([child for child in multiprocessing.active_children() if child not in self.others])
        else:
            self.pool.shutdown()
        self.pool = None


def _candidates(flagged: list[str]) -> list[str]:
    """Remedy names for the flagged codes, round-robin over codes (each code's first remedies come first)."""
    per_code = [[r.name for r in remedies_for(code)] for code in flagged]
    seen, out = set(), []
    for layer in zip_longest(*per_code):
        for name in layer:
            if name is not None and name not in seen:
                seen.add(name)
                out.append(name)
    return out


def run_fix(source: Callable[[], Pieces], *, seeds: int = 1, seed: int = 0, jobs: int = 1,
            budget_runs: int | None = None, thresholds=None, tolerance: float | None = None,
            title: str = "impediments fix", progress: Callable | None = None) -> FixReport:
    """Diagnose, try the remedies, judge them and choose a fix (see the module docstring).

    Args:
        source: picklable ``() -> Pieces`` (rebuilt in each worker).
        seeds: number of seeds (``seed``, ``seed + 1``, ...); a fix must hold on every one.
        seed: the first seed.
        jobs: worker processes.
        budget_runs: at most this many remedy runs (each remedy costs ``seeds`` runs), the combination included.
        thresholds: the doctor's thresholds (a ``Thresholds``, a dict of overrides, or None).
        tolerance: how far below the baseline the metric may land and still count as no worse
            (default: one binomial standard error of the baseline accuracy; see :mod:`.verdict`).
        progress: called with each finished :class:`Trial`.

    Raises:
        FixError: the baseline itself failed to build or train.
        ValueError: bad ``seeds``, ``jobs``, ``budget_runs`` or thresholds.
    """
    from impediments.doctor.codes import CODES
    from impediments.doctor.thresholds import Thresholds

    for name, value, low in (("seeds", seeds, 1), ("jobs", jobs, 1), ("budget_runs", budget_runs, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    th = Thresholds.coerce(thresholds)
    start, notes = time.perf_counter(), []
    pieces = source()
    seed_list = [seed + k for k in range(seeds)]
    workers = _Workers(jobs, notes, progress)
    try:  # Ctrl-C stops the trials (none is judged half-trained) and the workers, and reaches the caller
        with ctrl_c_stops_the_run():
            report = _run(source, pieces, seed_list, th, tolerance, budget_runs, title, workers, start)
    except BaseException:
        workers.close(interrupted=True)
        raise
    workers.close()
    return report


def _run(source, pieces, seed_list, th, tolerance, budget_runs, title, workers, start) -> FixReport:
    from impediments.doctor.codes import CODES

    seeds, notes = len(seed_list), workers.notes
    baseline = workers.run([(source, (), (), s, th) for s in seed_list])
    failed = [t.error for t in baseline if t.error]
    if failed:
        raise FixError(f"the setup itself failed to train: {failed[0]}")
    if tolerance is None:
        tolerance = accuracy_tolerance(baseline[0].val_acc, len(pieces.X_val))
    flagged = [c for c in CODES if any(c in t.flagged for t in baseline)]
    findings = tuple(f for f in baseline[0].findings if f["code"] in flagged)
    report = FixReport(title, {"steps": pieces.steps, "batch_size": pieces.batch_size, "seeds": seed_list,
                               "jobs": workers.jobs, "tolerance": tolerance,
                               "min_evidence_steps": min_evidence_steps(th),
                               "metric": "val_acc" if pieces.classification else "val_loss",
                               "val_examples": len(pieces.X_val)}, baseline, flagged, notes=notes)
    unknown = [c for c in flagged if not remedies_for(c)]
    if unknown:
        notes.append(f"no remedy is registered for {', '.join(unknown)}")
    names = _candidates(flagged)
    budget = budget_runs if budget_runs is not None else 10_000
    ctx = _Round(source, findings, seed_list, th, tolerance, min_evidence_steps(th), workers,
                 budget - (seeds if len(flagged) > 1 else 0), report)
    todo = [(n,) for n in names]
    while todo:
        done = ctx.run(todo)
        todo = [nxt for nxt in _follow_ups(done) if nxt not in ctx.tried]
    ctx.budget += seeds if len(flagged) > 1 else 0
    report.rows.sort(key=lambda r: rank_key(r.verdict))
    _choose(ctx)
    report.wall_s = time.perf_counter() - start
    return report


RETUNE = ("lr_down_3", "lr_up_3", "lr_up_9", "lr_up_27", "lr_up_270", "lr_up_2700")
#: the learning rates a remedy is retried with when it cleared its target but its run then diverged
RETUNE_DOWN = ("lr_down_3", "lr_down_9", "lr_down_27")
EARLY_STOP = "training stopped early"
#: what a learning rate tuned for another scale looks like; a remedy that only adds these is retuned.
LR_SYMPTOMS = {"loss_plateau", "diverging_loss", "parameters_not_updated", "non_finite", "exploding_gradients"}
RETUNED_REMEDIES = 2


def _follow_ups(rows: list[Row]) -> list[tuple[str, ...]]:
    """What the finished rows call for next.

    - A sweep point that cleared none of its targets (and added nothing except as by-products of a run that
      stopped on a non-finite loss), or that is a verified fix, continues its sweep (``lr_down_27`` ->
      ``lr_down_270`` -> ...): the sweep goes on while nothing changes or while it keeps fixing, and the
      ranking picks the best point.
    - A remedy that cleared its target but lost on the metric, or added only :data:`LR_SYMPTOMS`, is retried
      with the learning rate swept (/3 and x3 up to x2700; the best :data:`RETUNED_REMEDIES` such remedies):
      it changed the problem's scale (standardized inputs, a new init or layer), and a learning rate tuned
      for the old scale says nothing about the remedy itself. Both versions are shown.
    - A remedy that cleared its target but whose run then stopped on a non-finite loss (no other new finding)
      is retried with the learning rate lowered (:data:`RETUNE_DOWN`): the bug it removed hid a learning rate
      too large for the repaired problem (a loss that broadcast to the mean target, say).
    """
    out, retuned = [], 0
    for row in sorted(rows, key=lambda r: rank_key(r.verdict)):
        v = row.verdict
        if v.errors or len(v.remedies) != 1:
            continue
        hit = set(v.targets) & set(v.cleared)
        if (not hit and (not v.new or v.short)) or v.verified:
            nxt = continuation(v.remedies[0])
            out += [(nxt,)] if nxt else []
        elif (hit and not v.verified and set(v.new) <= LR_SYMPTOMS and (v.new or not v.metric_ok)
              and REMEDIES[v.remedies[0]].slot != "optimizer" and retuned < RETUNED_REMEDIES):
            retuned += 1
            out += [(v.remedies[0], lr) for lr in RETUNE]
        elif (hit and v.short.startswith(EARLY_STOP) and set(v.new) <= LR_SYMPTOMS
              and REMEDIES[v.remedies[0]].slot != "optimizer" and retuned < RETUNED_REMEDIES):
            retuned += 1
            out += [(v.remedies[0], lr) for lr in RETUNE_DOWN]
    return out


class _Round:
    """The shared state of the remedy runs: what to run with, the budget left, what was tried."""

    def __init__(self, source, findings, seeds, th, tolerance, min_steps, workers, budget, report):
        self.source, self.findings, self.seeds, self.th = source, findings, seeds, th
        self.tolerance, self.min_steps, self.workers = tolerance, min_steps, workers
        self.budget, self.report, self.tried = budget, report, set()

    def trials(self, combos: list[tuple[str, ...]]) -> list[list[Trial]]:
        tasks = [(self.source, c, self.findings, s, self.th) for c in combos for s in self.seeds]
        out = self.workers.run(tasks)
        self.budget -= len(tasks)
        return [out[i * len(self.seeds):(i + 1) * len(self.seeds)] for i in range(len(combos))]

    def judge(self, combo: tuple[str, ...], runs: list[Trial], targets: set[str] | None = None) -> Row:
        if targets is None:
            targets = set(REMEDIES[combo[0]].codes)
        return Row(judge(combo, targets, self.report.baseline, runs, self.tolerance, self.min_steps), runs)

    def run(self, combos: list[tuple[str, ...]]) -> list[Row]:
        affordable = max(0, self.budget // len(self.seeds))
        self.report.not_tried += [" + ".join(c) for c in combos[affordable:]]
        combos = combos[:affordable]
        self.tried.update(combos)
        rows = [self.judge(c, runs) for c, runs in zip(combos, self.trials(combos))]
        self.report.rows += rows
        return rows


def smallest_fix(singles: list[Row], root: str | None) -> Row | None:
    """Among the verified single remedies (best-ranked first), the smallest change (:func:`extent`) of those that
    clear the root cause, the best-ranked among equals; the best-ranked verified remedy when none clears it.

    A fix that removes the named cause with one changed value (``bias → 0`` for units held dead by a large
    negative bias) is preferred over one that replaces the weights too (LSUV, He init), which also clears
    the findings but changes what the finding did not name.
    """
    clearing = [r for r in singles if root in r.verdict.verified]
    if not clearing:
        return singles[0] if singles else None
    return min(clearing, key=lambda r: extent(r.verdict.remedies))      # min keeps the first among equals


def _choose(ctx: _Round) -> None:
    report = ctx.report
    units = best_combination([r.verdict for r in report.rows], lambda n: REMEDIES[n].slot)
    singles = [r for r in report.rows if r.verdict.verified]
    best_single = smallest_fix(singles, root_cause(report.baseline[0].findings))
    if len(units) > 1 and ctx.budget >= len(ctx.seeds):
        combo = tuple(n for unit in units for n in unit)
        targets = set().union(*(set(r.verdict.verified) for r in report.rows if r.verdict.remedies in units))
        row = ctx.judge(combo, ctx.trials([combo])[0], targets)
        report.combination = row
        if set(row.verdict.verified) >= targets and (best_single is None or len(row.verdict.cleared)
                                                      >= len(best_single.verdict.cleared)):
            report.chosen = row
    elif len(units) > 1:
        ctx.workers.notes.append("the combination was not tried: the run budget is spent")
    if report.chosen is None and best_single is not None:
        report.chosen = best_single


def fix(model, data, *, optimizer=None, loss_fn=None, steps: int = 100, batch_size: int = 64, prepare=None,
        seeds: int = 1, seed: int = 0, jobs: int = 1, budget_runs: int | None = None, thresholds=None,
        tolerance: float | None = None, progress: Callable | None = None) -> FixReport:
    """Try the doctor's remedies on copies of a setup and report which ones verifiably fix it.

    Args:
        model: an ``nn.Module`` (copied; never trained itself) or a ``() -> nn.Module`` factory.
        data: a dataset name, a :class:`~impediments.data.Dataset`, ``(X, y)`` (20% held out for
            validation, seeded) or ``(X, y, X_val, y_val)``.
        optimizer: ``params -> Optimizer`` (default SGD lr 0.1).
        loss_fn: ``(output, target) -> loss`` (default cross-entropy for integer targets, else MSE).
        steps, batch_size: the training budget of every run.
        prepare: ``model -> None`` run after ``model.train()`` in every run.
        seeds, seed, jobs, budget_runs, thresholds, tolerance, progress: see :func:`run_fix`.

    Returns:
        A :class:`~impediments.fix.report.FixReport`: ``print(report)``, ``report.snippet()``,
        ``report.exit_code``, ``report.to_json(path)``, ``impediments.report.render_fix_html(report, path)``.

    Examples:
        >>> report = imp.fix(lambda: imp.mlp(64, 10, width=64, depth=3), "digits")   # doctest: +SKIP
        >>> print(report); print(report.snippet())                                  # doctest: +SKIP
    """
    pieces = make_pieces(model, data, optimizer=optimizer, loss_fn=loss_fn, steps=steps, batch_size=batch_size,
                         prepare=prepare)
    return run_fix(PiecesSource(pieces), seeds=seeds, seed=seed, jobs=jobs, budget_runs=budget_runs,
                   thresholds=thresholds, tolerance=tolerance, progress=progress)
