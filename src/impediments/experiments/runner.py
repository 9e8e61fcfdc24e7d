"""Run experiments over seeds, cache each (experiment, seed), judge the claims, write figures and the notebook.

``reproduce(names, quick=..., out=..., seeds=...)`` is what ``impediments
reproduce`` calls. Every (experiment, seed) pair is one task: it builds
``Config.quick(seed)`` or ``Config.full(seed)`` and looks for a cache entry
keyed by a hash of (experiment name, config, package version, experiment
source). A hit skips the run; a miss runs the experiment and its claims and
writes the entry atomically, so adding seeds reuses the earlier ones and an
interrupted run resumes after the last finished pair. Tasks run in ``jobs``
worker processes (one thread each). Then, per experiment, the claims are
judged over the seeds (:mod:`impediments.experiments.verdict`) and the figure
draws the mean result with the band over seeds
(:mod:`impediments.experiments.aggregate`).

Output folder layout::

    out/<name>.png  out/<name>.json  out/claims.json  out/notebook.html
    out/.cache/<name>-<key>.json          one per (experiment, seed)
    out/.cache/<name>-figure-<key>.png    the figure of a set of seeds
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from impediments._interrupt import ctrl_c_stops_the_run, ignore_sigint, sigint_ignored, terminate
from impediments.experiments.cache import (  # noqa: F401  (re-exported: part of the runner's API)
    CACHE_DIR, CacheWarning, OutputFolderError, atomic_write, cache_key, config_dict, entry_paths, load_cached,
    prepare_output,
)
from impediments.experiments.figures import cached_figure, draw, story_of, takes_band  # noqa: F401  (draw: API)
from impediments.experiments.framework import Table, from_jsonable, to_jsonable
from impediments.experiments.seeds import (  # noqa: F401  (re-exported: part of the runner's API)
    FULL_SEEDS, QUICK_SEEDS, default_seeds, parse_seeds, seed_text,
)
from impediments.experiments.verdict import FAILS, HOLDS, INCONCLUSIVE, SeedClaim, over_seeds

CLAIMS_SCHEMA, CLAIMS_VERSION = "impediments.claims", 2


@dataclass
class Outcome:
    """What one experiment produced over its seeds (fresh or from the cache)."""

    name: str
    description: str
    section: str
    seeds: list[int]
    configs: dict
    result: dict                    # the mean result over seeds (JSON form)
    claims: list[SeedClaim]
    tables: list[Table]
    png: bytes
    elapsed_s: float                # seconds in run() summed over seeds
    cached: bool
    story: str = ""
    errors: list[str] = field(default_factory=list)
    #: the figure draws the band between the lowest and highest seed (else the mean over seeds only)
    band: bool = False

    @property
    def verdict(self) -> str:
        if self.errors:
            return FAILS
        verdicts = [c.verdict for c in self.claims]
        return FAILS if FAILS in verdicts else (INCONCLUSIVE if INCONCLUSIVE in verdicts else HOLDS)

    @property
    def failed(self) -> bool:
        return self.verdict == FAILS


# ---------------------------------------------------------------- one (experiment, seed)


def run_seed(name: str, seed: int, quick: bool, out: str) -> dict:
    """Run (or load from the cache) one experiment at one seed; returns the cache record.

    The record holds the config, the result in JSON form, the claims of that
    seed and the seconds spent in ``run``. Top-level so worker processes can run it.
    """
    from impediments import experiments

    module = experiments.get(name)
    config = module.Config.quick(seed) if quick else module.Config.full(seed)
    key = cache_key(name, config, module)
    record = load_cached(Path(out), name, key)
    if record is not None:
        record["cached"] = True
        return record
    start = time.perf_counter()
    result = module.run(config)
    elapsed = time.perf_counter() - start
    claims = list(module.claims(result))
    record = {"name": name, "key": key, "seed": seed, "quick": quick, "config": config_dict(config),
              "elapsed_s": elapsed, "result": to_jsonable(result), "claims": [c.to_dict() for c in claims]}
    atomic_write(entry_paths(Path(out), name, key), _dumps(record))
    record["claims"], record["cached"] = claims, False
    return record


def cached_record(name: str, seed: int, quick: bool, out: Path) -> dict | None:
    """The cache record of one (experiment, seed), or None when it has not run yet (or its entry is corrupt)."""
    from impediments import experiments

    module = experiments.get(name)
    config = module.Config.quick(seed) if quick else module.Config.full(seed)
    record = load_cached(out, name, cache_key(name, config, module))
    if record is not None:
        record["cached"] = True
    return record


def _worker_init() -> None:
    ignore_sigint()  # the parent handles Ctrl-C and terminates its workers
    torch.set_num_threads(1)


# ---------------------------------------------------------------- one experiment over seeds


def combine_seeds(name: str, records: dict[int, dict], out: Path) -> Outcome:
    """The outcome of one experiment from its per-seed records: claims over seeds, mean result, figure."""
    from impediments import experiments
    from impediments.experiments.aggregate import band, mean_result

    module = experiments.get(name)
    seeds = sorted(records)
    claims = over_seeds({s: records[s]["claims"] for s in seeds})
    results = [from_jsonable(module.Result, records[s]["result"]) for s in seeds]
    mean = mean_result(results)
    tables = list(module.tables(mean)) if hasattr(module, "tables") else []
    png = cached_figure(out, name, module, [records[s]["key"] for s in seeds], mean, band(results))
    return Outcome(name=name, description=experiments.description(name), section=module.SECTION, seeds=seeds,
                   configs={str(s): records[s]["config"] for s in seeds}, result=to_jsonable(mean), claims=claims,
                   tables=tables, png=png, elapsed_s=sum(float(records[s]["elapsed_s"]) for s in seeds),
                   cached=all(records[s]["cached"] for s in seeds), story=story_of(module), band=takes_band(module))


def crashed(name: str, seeds: list[int], errors: list[str]) -> Outcome:
    """An outcome for an experiment that raised at some seed: one failed claim carrying the errors."""
    from impediments import experiments

    try:
        module = experiments.get(name)
        description, section = experiments.description(name), module.SECTION
    except Exception:  # the module itself may fail to import
        description, section = "(could not be imported)", "Errors"
    error = "; ".join(errors)
    failed = SeedClaim(text=f"the experiment runs to completion (it raised {error})", source="runner",
                       condition="no exception", seeds=seeds, measured={}, quantities=[], verdict=FAILS)
    return Outcome(name=name, description=description, section=section, seeds=seeds, configs={}, result={},
                   claims=[failed], tables=[], png=b"", elapsed_s=0.0, cached=False, errors=list(errors))


def _dumps(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=1, allow_nan=False)


def _write_public(out: Path, o: Outcome, *, quick: bool) -> None:
    if o.png:
        atomic_write(out / f"{o.name}.png", o.png)
    else:  # a crashed experiment: no figure, and no stale one from an earlier run
        (out / f"{o.name}.png").unlink(missing_ok=True)
    atomic_write(out / f"{o.name}.json", _dumps({
        "name": o.name, "description": o.description, "section": o.section, "quick": quick, "seeds": o.seeds,
        "configs": o.configs, "elapsed_s": o.elapsed_s, "verdict": o.verdict, "errors": o.errors,
        "claims": [c.to_dict() for c in o.claims], "tables": [t.to_dict() for t in o.tables],
        "mean_result": o.result}))


# ---------------------------------------------------------------- the whole run


def _reporter(stream) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say


def reproduce(names: Sequence[str], *, quick: bool, out: str | os.PathLike, seeds: Sequence[int] | None = None,
              seed: int = 0, jobs: int = 1, stream=None,
              links: Callable[[str], Sequence[tuple[str, str]]] | None = None) -> bool:
    """Run experiments over seeds and write ``<name>.png``, ``<name>.json``, ``claims.json``, ``notebook.html``.

    Args:
        names: registry names, run in the module's story order.
        quick: small budgets (``Config.quick``) instead of ``Config.full``.
        out: output folder (created if needed).
        seeds: the seeds to run; default :func:`default_seeds` from ``seed``.
        seed: first seed of the default seeds.
        jobs: worker processes; 1 runs everything in this process.
        stream: where progress lines go (default ``sys.stderr``).
        links: experiment name -> ``(label, href)`` pairs for the notebook's "Try it" line (its Jupyter
            notebook, its playground setup); the CLI passes the playground's.

    Returns:
        True iff no claim fails (inconclusive claims do not fail the run).

    Raises:
        ValueError: for an unknown experiment name, a negative seed, or ``jobs < 1``.
        OutputFolderError: if ``out`` cannot be created or written.
    """
    from impediments import experiments

    unknown = [n for n in names if n not in experiments.REGISTRY]
    if unknown:
        raise ValueError(f"unknown experiment(s) {', '.join(unknown)}; valid: {', '.join(experiments.names())}")
    seeds = sorted(set(default_seeds(quick, seed) if seeds is None else seeds))
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    order = [n for n in experiments.names() if n in set(names)]
    out = prepare_output(out)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the models are tiny: one thread is fastest on a shared CPU, and deterministic
    try:
        return _reproduce(order, quick=quick, out=out, seeds=seeds, jobs=jobs,
                          say=_reporter(stream if stream is not None else sys.stderr), links=links)
    finally:
        torch.set_num_threads(threads)


def _run_tasks(tasks: list[tuple[str, int]], *, quick: bool, out: Path, jobs: int,
               say: Callable[[str], None]) -> dict[tuple[str, int], dict | str]:
    """Every task's record, or its error text; in ``jobs`` spawned worker processes when ``jobs > 1``."""
    done: dict[tuple[str, int], dict | str] = {}

    def report(task, rec) -> None:
        done[task] = rec
        how = rec if isinstance(rec, str) else ("cached" if rec["cached"] else f"{rec['elapsed_s']:.1f} s")
        say(f"[{len(done)}/{len(tasks)}] {task[0]} seed {task[1]}: {how}")

    pending = []
    for task in tasks:  # cached pairs are read here: no worker is started for a run that is all cached
        cached = cached_record(task[0], task[1], quick, out)
        if cached is None:
            pending.append(task)
        else:
            report(task, cached)
    tasks_left = pending
    if not tasks_left:
        return done
    if jobs == 1 or len(tasks_left) == 1:
        with ctrl_c_stops_the_run():
            for task in tasks_left:
                try:
                    report(task, run_seed(task[0], task[1], quick, str(out)))
                except Exception as exc:  # one broken experiment must not hide the others' results
                    say(traceback.format_exc().rstrip())
                    report(task, f"{type(exc).__name__}: {exc}")
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    others = set(multiprocessing.active_children())  # processes of the caller's own, left alone on Ctrl-C
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks_left)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init)
    try:
        with sigint_ignored():  # workers spawned now inherit SIG_IGN: Ctrl-C reaches the parent only
            futures = {pool.submit(run_seed, name, s, quick, str(out)): (name, s) for name, s in tasks_left}
        for future in as_completed(futures):
            try:
                rec = future.result()
            except Exception as exc:  # the experiment raised, or its worker died (BrokenProcessPool)
                say(f"{futures[future][0]} seed {futures[future][1]} raised:\n{exc!r}")
                rec = f"{type(exc).__name__}: {exc}"
            report(futures[future], rec)
    except BaseException:  # Ctrl-C (or any error here): stop the workers now instead of letting them finish
        with sigint_ignored():
            pool.shutdown(wait=False, cancel_futures=True)
            terminate([child for child in multiprocessing.active_children() if child not in others])
        raise
    pool.shutdown()
    return done


def _reproduce(order: list[str], *, quick: bool, out: Path, seeds: list[int], jobs: int,
               say: Callable[[str], None], links: Callable[[str], Sequence[tuple[str, str]]] | None = None) -> bool:
    from impediments.report.notebook import write_notebook

    mode = "quick" if quick else "full"
    say(f"reproducing {len(order)} experiment(s), {mode} mode, seeds {seed_text(seeds)}, {jobs} job(s) -> {out}")
    start = time.perf_counter()
    done = _run_tasks([(n, s) for n in order for s in seeds], quick=quick, out=out, jobs=jobs, say=say)
    outcomes: list[Outcome] = []
    for name in order:
        errors = [f"seed {s}: {done[(name, s)]}" for s in seeds if isinstance(done[(name, s)], str)]
        try:
            o = crashed(name, seeds, errors) if errors else combine_seeds(
                name, {s: done[(name, s)] for s in seeds}, out)
        except Exception as exc:
            say(traceback.format_exc().rstrip())
            o = crashed(name, seeds, [f"{type(exc).__name__}: {exc}"])
        _write_public(out, o, quick=quick)
        outcomes.append(o)
        counts = {v: sum(c.verdict == v for c in o.claims) for v in (HOLDS, INCONCLUSIVE, FAILS)}
        say(f"{name}: {counts[HOLDS]} hold, {counts[INCONCLUSIVE]} inconclusive, {counts[FAILS]} fail "
            f"({len(seeds)} seeds)")
        for c in o.claims:
            if c.verdict != HOLDS:
                detail = "; ".join(f"{q.quantity} = {q.mean:.4g} [{q.low:.4g}, {q.high:.4g}]" for q in c.quantities)
                say(f"    {c.verdict.upper()}: {c.text} [{c.condition}; {detail}]")
    claims = [c for o in outcomes for c in o.claims]
    counts = {v: sum(c.verdict == v for c in claims) for v in (HOLDS, INCONCLUSIVE, FAILS)}
    ok = counts[FAILS] == 0
    atomic_write(out / "claims.json", _dumps({
        "schema": CLAIMS_SCHEMA, "version": CLAIMS_VERSION, "quick": quick, "seeds": seeds,
        "confidence": 0.95, "passed": ok, "counts": counts,
        "experiments": {o.name: {"verdict": o.verdict, "errors": o.errors,
                                 "claims": [c.to_dict() for c in o.claims]} for o in outcomes}}))
    write_notebook(out / "notebook.html", outcomes, quick=quick, seeds=seeds, writer=atomic_write, links=links)
    say(f"{counts[HOLDS]} claims hold, {counts[INCONCLUSIVE]} inconclusive, {counts[FAILS]} fail over seeds "
        f"{seed_text(seeds)} ({time.perf_counter() - start:.0f} s); wrote {out / 'notebook.html'}")
    return ok
