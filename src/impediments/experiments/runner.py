"""Run experiments, cache their results, write figures, claims and the lab notebook.

``reproduce(names, quick=..., out=..., seed=...)`` is what ``impediments
reproduce`` calls. For each experiment it builds ``Config.quick(seed)`` or
``Config.full(seed)``, and looks for a cache entry keyed by a hash of
(experiment name, config, package version, experiment source). A hit skips
the run (a repeated run is instant); a miss runs, plots and checks claims,
then writes the cache entry last, so an interrupted run resumes after the
last finished experiment. Every file is written atomically (temporary file,
then ``os.replace``). A corrupt cache entry is reported with a warning and
rerun.

Output folder layout::

    out/<name>.png  out/<name>.json  out/claims.json  out/notebook.html
    out/.cache/<name>-<key>.json     out/.cache/<name>-<key>.png
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from impediments.experiments.cache import (  # noqa: F401  (re-exported: part of the runner's API)
    CacheWarning, OutputFolderError, atomic_write, cache_key, config_dict, entry_paths, load_cached, prepare_output,
)
from impediments.experiments.framework import Claim, Table, from_jsonable, to_jsonable

@dataclasses.dataclass
class Outcome:
    """What one experiment produced (fresh or from the cache)."""

    name: str
    description: str
    section: str
    config: dict
    result: dict
    claims: list[Claim]
    tables: list[Table]
    png: bytes
    elapsed_s: float
    cached: bool
    story: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.claims)



# ---------------------------------------------------------------- running one experiment


def run_experiment(module, config) -> tuple[object, list[Claim], list[Table], bytes, float]:
    """Run, check and plot one experiment; returns (result, claims, tables, png, seconds for run)."""
    start = time.perf_counter()
    result = module.run(config)
    elapsed = time.perf_counter() - start
    claims = list(module.claims(result))
    tables = list(module.tables(result)) if hasattr(module, "tables") else []
    from impediments.report.html import fig_to_png

    fig, _ = module.plot(result)
    return result, claims, tables, fig_to_png(fig), elapsed


def story_of(module) -> str:
    """The experiment's story for the notebook: its module docstring after the first line."""
    doc = inspect.getdoc(module) or ""
    return doc.split("\n", 1)[1].strip() if "\n" in doc else ""


def obtain(name: str, *, quick: bool, seed: int, out: Path) -> Outcome:
    """An experiment's outcome from the cache, or by running it and caching it."""
    from impediments import experiments

    module = experiments.get(name)
    config = module.Config.quick(seed) if quick else module.Config.full(seed)
    key = cache_key(name, config, module)
    record = load_cached(out, name, key)
    if record is None:
        result, claims, tables, png, elapsed = run_experiment(module, config)
        record = {"name": name, "key": key, "description": module.DESCRIPTION, "section": module.SECTION,
                  "story": story_of(module), "quick": quick, "seed": seed, "config": config_dict(config),
                  "elapsed_s": elapsed,
                  "result": to_jsonable(result), "claims": claims, "tables": tables}
        jpath, ppath = entry_paths(out, name, key)
        atomic_write(ppath, png)
        atomic_write(jpath, _dumps({**record, "claims": [c.to_dict() for c in claims],
                                    "tables": [t.to_dict() for t in tables]}))
        record["png"], cached = png, False
    else:
        cached = True
    outcome = Outcome(name=name, description=record["description"], section=record["section"],
                      config=record["config"], result=record["result"], claims=record["claims"],
                      tables=record["tables"], png=record["png"], elapsed_s=float(record["elapsed_s"]),
                      cached=cached, story=record.get("story", ""))
    _write_public(out, outcome, quick=quick, seed=seed)
    return outcome


def crashed(name: str, exc: BaseException) -> Outcome:
    """An outcome for an experiment that raised: one failed claim carrying the error (nothing cached)."""
    from impediments import experiments

    try:
        module = experiments.get(name)
        description, section = module.DESCRIPTION, module.SECTION
    except Exception:  # the module itself may fail to import
        description, section = "(could not be imported)", "Errors"
    error = f"{type(exc).__name__}: {exc}"
    return Outcome(name=name, description=description, section=section, config={}, result={},
                   claims=[Claim(text=f"the experiment runs to completion (it raised {error})", source="runner",
                                 measured={"raised": True}, threshold="no exception", passed=False)],
                   tables=[], png=b"", elapsed_s=0.0, cached=False)


def rebuild_result(name: str, outcome: Outcome):
    """The ``Result`` dataclass of a (possibly cached) outcome."""
    from impediments import experiments

    return from_jsonable(experiments.get(name).Result, outcome.result)


def _dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=1, allow_nan=False)


def _write_public(out: Path, o: Outcome, *, quick: bool, seed: int) -> None:
    if o.png:
        atomic_write(out / f"{o.name}.png", o.png)
    else:  # a crashed experiment: no figure, and no stale one from an earlier run
        (out / f"{o.name}.png").unlink(missing_ok=True)
    atomic_write(out / f"{o.name}.json", _dumps({
        "name": o.name, "description": o.description, "section": o.section, "quick": quick, "seed": seed,
        "config": o.config, "elapsed_s": o.elapsed_s, "passed": o.passed,
        "claims": [c.to_dict() for c in o.claims], "tables": [t.to_dict() for t in o.tables],
        "result": o.result}))


# ---------------------------------------------------------------- progress and the whole run


def _reporter(stream) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def reproduce(names: Sequence[str], *, quick: bool, out: str | os.PathLike, seed: int = 0,
              stream=None) -> bool:
    """Run experiments and write ``<name>.png``, ``<name>.json``, ``claims.json``, ``notebook.html``.

    Args:
        names: registry names, run in the module's story order.
        quick: small budgets (``Config.quick``) instead of ``Config.full``.
        out: output folder (created if needed).
        seed: seed passed to every config.
        stream: where progress lines go (default ``sys.stderr``).

    Returns:
        True iff every claim of every experiment passed.

    Raises:
        ValueError: for an unknown experiment name (the message lists the valid ones).
        OutputFolderError: if ``out`` cannot be created or written.
    """
    from impediments import experiments

    unknown = [n for n in names if n not in experiments.REGISTRY]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; valid: {', '.join(experiments.names())}")
    order = [n for n in experiments.names() if n in set(names)]
    out = prepare_output(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the models are tiny: one thread is fastest on a shared CPU, and deterministic
    try:
        return _reproduce(order, quick=quick, out=out, seed=seed,
                          say=_reporter(stream if stream is not None else sys.stderr))
    finally:
        torch.set_num_threads(threads)


def _reproduce(order: list[str], *, quick: bool, out: Path, seed: int, say: Callable[[str], None]) -> bool:
    from impediments.report.notebook import write_notebook

    mode = "quick" if quick else "full"
    say(f"reproducing {len(order)} experiment(s), {mode} mode, seed {seed} -> {out}")
    outcomes: list[Outcome] = []
    for i, name in enumerate(order, 1):
        say(f"[{i}/{len(order)}] {name} ...")
        try:
            o = obtain(name, quick=quick, seed=seed, out=out)
        except Exception as exc:  # one broken experiment must not hide the others' results
            say(traceback.format_exc().rstrip())
            o = crashed(name, exc)
            _write_public(out, o, quick=quick, seed=seed)
        outcomes.append(o)
        verdict = sum(c.passed for c in o.claims)
        how = "cached" if o.cached else f"{o.elapsed_s:.1f} s"
        say(f"[{i}/{len(order)}] {name}: {verdict}/{len(o.claims)} claims passed ({how})")
        for c in o.claims:
            if not c.passed:
                say(f"    FAILED: {c.text} [{c.threshold}; measured {c.measured}]")
    atomic_write(out / "claims.json", _dumps({
        "quick": quick, "seed": seed, "passed": all(o.passed for o in outcomes),
        "experiments": {o.name: {"passed": o.passed, "claims": [c.to_dict() for c in o.claims]}
                        for o in outcomes}}))
    write_notebook(out / "notebook.html", outcomes, quick=quick, seed=seed, writer=atomic_write)
    total = sum(len(o.claims) for o in outcomes)
    passed = sum(c.passed for o in outcomes for c in o.claims)
    say(f"{passed}/{total} claims passed; wrote {out / 'notebook.html'}")
    return passed == total
