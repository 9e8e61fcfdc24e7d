"""The playground and the live doctor in a real browser: Playwright driving Debian's chromium.

``make test`` installs chromium with apt-get when it is missing; never ``playwright install``.
The screenshots the README shows are written by these tests to docs/screenshots/.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impediments.playground import (CHOICES, LESSONS, PlaygroundConfig, experiment_config, from_fragment, lesson,
                                    to_fragment)

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "docs" / "screenshots"
SATURATING = PlaygroundConfig(activation="sigmoid", init="too_large", steps=5000)


def _cli(*args) -> tuple[subprocess.Popen, str]:
    # Ctrl-C is what stops these servers. A shell that starts the suite in the background (CI may) leaves
    # SIGINT ignored, and Python keeps an inherited SIG_IGN, so the child gets the default disposition back.
    proc = subprocess.Popen([sys.executable, "-m", "impediments.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
    return proc, url


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


@pytest.fixture(scope="module")
def playground_server():
    """``impediments playground --no-browser --port 0``; at the end Ctrl-C must stop it cleanly (exit 0)."""
    proc, url = _cli("playground", "--no-browser", "--port", "0")
    assert url.endswith("/")
    yield proc, url
    _, err = _stop(proc)
    assert proc.returncode == 0 and "Traceback" not in err and "stopped" in err, err


@pytest.fixture
def playground(playground_server):
    """The playground's URL; training is paused after the test (it would compete for the CPU)."""
    url = playground_server[1]
    yield url
    _post(url, "pause", {})


def _post(url: str, action: str, body: dict) -> tuple[int, bytes]:
    port = int(url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", f"/api/{action}", json.dumps(body), {
        "Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}", "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


@pytest.fixture
def page(browser):
    """A fresh page; the test fails if the page logs any console error or warning, or throws."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield pg
    context.close()
    assert problems == []


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    _wait(page, "window.__pg.updates >= 1", timeout=90)         # the session has warmed up


def _wait(page, expression: str, timeout: float = 30.0) -> None:
    """Poll a JS expression with ``page.evaluate`` (``wait_for_function`` would need eval, which the page's
    Content-Security-Policy forbids, as it should)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {expression}")
        page.wait_for_timeout(50)


def _run(page, label: str = "A") -> dict | None:
    return page.evaluate(f"(window.__pg.last && window.__pg.last.runs.find(r => r.label === '{label}')) || null")


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)


def test_page_loads_with_every_offered_control_and_no_console_errors(page, playground):
    _open(page, playground)
    assert page.text_content("#connection") == "live"
    for field, choices in CHOICES.items():
        options = page.eval_on_selector(f"#cfg-{field}", "s => Array.from(s.options).map(o => o.value)")
        assert [float(o) for o in options] == [float(c) for c in choices] if field not in (
            "dataset", "activation", "init", "norm", "norm_position", "optimizer", "inputs") else options == list(choices)


def test_sigmoid_with_too_large_init_saturates_and_histograms_pile_at_0_and_1(page, playground):
    _open(page, playground)
    page.select_option("#cfg-activation", "sigmoid")
    page.select_option("#cfg-init", "too_large")
    page.select_option("#cfg-steps", "5000")
    start = time.monotonic()
    page.click("#train")
    page.wait_for_selector('#run-A .finding[data-code="saturated_units"]', timeout=15_000)
    elapsed = time.monotonic() - start
    _wait(page, "window.__pg.last.runs[0].hist && window.__pg.last.runs[0].step > 20")
    run = _run(page)
    assert run["config"] == SATURATING.to_dict()
    for counts in run["hist"]["counts"]:                    # every layer: most outputs in the outer bins
        ends = (counts[0] + counts[-1]) / sum(counts)
        assert ends > 0.5 and counts[0] > 0.15 * sum(counts) and counts[-1] > 0.15 * sum(counts), counts
    # ... and the drawn picture shows it: the first and last bars are the tallest, the middle is empty
    heights = page.evaluate("""() => {
        const c = document.querySelector('#run-A .hist-row:last-child canvas.now');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height - 10).data;
        const col = x => { let n = 0; for (let y = 0; y < c.height - 10; y++) n += d[(y * c.width + x) * 4 + 3] > 0; return n; };
        return [col(2), col(Math.floor(c.width / 2)), col(c.width - 3)];
    }""")
    assert min(heights[0], heights[2]) > 3 * max(heights[1], 1), heights
    print(f"saturated_units shown {elapsed:.1f} s after Train; edge/middle bar heights {heights}")
    _shot(page, "playground-saturated.png")


def test_url_restores_the_controls(page, playground):
    config = experiment_config("dead_bias")
    _open(page, playground + "#" + to_fragment(config))
    for field, value in config.to_dict().items():
        shown = page.input_value(f"#cfg-{field}")
        assert (shown == value) if isinstance(value, str) else float(shown) == float(value), (field, shown, value)
    page.evaluate("location.hash = 'activation=evil&depth=10'")
    _wait(page, "document.querySelector('#cfg-depth').value === '10'")
    assert page.input_value("#cfg-activation") == PlaygroundConfig().activation     # not offered: not used
    assert "activation=evil" in page.text_content("#problem")
    assert page.evaluate("location.hash").startswith("#dataset=")                  # rewritten from the controls


def test_reset_step_train_and_pause(page, playground):
    _open(page, playground + "#" + to_fragment(PlaygroundConfig(activation="tanh", depth=2, width=16)))
    page.click("#reset")
    _wait(page, "(() => { const a = window.__pg.last.runs[0]; return a && a.step === 0 && a.status === 'ready'"
                " && a.config.activation === 'tanh'; })()")
    page.click("#step")
    _wait(page, "window.__pg.last.runs[0].step === 1")
    page.click("#step")
    _wait(page, "window.__pg.last.runs[0].step === 2 && window.__pg.last.runs[0].status === 'paused'")
    assert page.get_attribute("#run-A", "data-step") == "2"
    page.click("#train")
    _wait(page, "window.__pg.last.runs[0].step > 20 && window.__pg.last.training")
    page.click("#pause")
    _wait(page, "window.__pg.last.runs[0].status === 'paused' && !window.__pg.last.training")
    paused_at = _run(page)["step"]
    page.wait_for_timeout(500)
    assert _run(page)["step"] == paused_at                  # nothing trains while paused


def test_apply_remedy_trains_a_second_run_with_one_change_side_by_side(page, playground):
    _open(page, playground + "#" + to_fragment(SATURATING))
    page.click("#train")
    page.click('#run-A .finding[data-code="saturated_units"] .apply-remedy[data-remedy="batchnorm_before_activation"]',
               timeout=15_000)
    _wait(page, "(() => { const b = window.__pg.last.runs.find(r => r.label === 'B');"
                " return b && b.step > 150 && b.saturated && b.saturated.length; })()", timeout=30)
    a, b = _run(page, "A"), _run(page, "B")
    assert b["config"] == {**a["config"], "norm": "batch"}                  # one change: BatchNorm, nothing else
    assert "remedy for saturated_units" in b["note"]
    assert max(b["saturated"]) < 0.5 * min(a["saturated"]), (a["saturated"], b["saturated"])
    box_a, box_b = page.locator("#run-A").bounding_box(), page.locator("#run-B").bounding_box()
    assert box_b["x"] >= box_a["x"] + box_a["width"] and abs(box_b["y"] - box_a["y"]) < 5     # side by side
    _shot(page, "playground-remedy.png")


def test_live_doctor_page_follows_a_spec_while_it_trains(page):
    proc, url = _cli("doctor", "examples/dead_relu.py", "--live", "--no-browser", "--port", "0", "--steps", "1000")
    try:
        page.goto(url)                                      # training starts once a page is connected
        seen, shot, deadline = [], False, time.monotonic() + 90
        while time.monotonic() < deadline:
            run = _run(page, "your model")
            if run:
                seen.append((run["status"], run["step"], {f["code"] for f in run["findings"]}))
                if run["status"] == "training" and "dead_units" in seen[-1][2] and not shot:
                    _shot(page, "live-doctor.png")              # findings on the page while it trains
                    shot = True
                if run["status"] == "done":
                    break
            page.wait_for_timeout(50)
        training = [s for s in seen if s[0] == "training"]
        assert len({step for _, step, _ in training}) >= 3, seen            # it followed the training
        assert any("dead_units" in codes for _, _, codes in training), seen  # findings arrive while it trains
        assert seen[-1][0] == "done" and seen[-1][1] == 1000, seen[-1]
        assert "dead_units" in page.text_content('.run[data-label="your model"] .findings')
        while "the page stays up until Ctrl-C" not in proc.stderr.readline():   # report printed; serving on
            assert proc.poll() is None
    finally:
        page.close()                                        # before the server goes (no reconnect errors)
        out, err = _stop(proc)
    assert proc.returncode == 1, err                         # findings: exit 1, after Ctrl-C
    assert "dead_units" in out and "Traceback" not in err


def test_updates_arrive_5_per_second_at_depth_10_width_256_and_memory_stays_flat(playground_server, playground):
    """Shortened version of "10 minutes of use": ~7 s of training at depth 10, width 256 with a reading
    and a stalled page; the server process's resident memory must stay flat and every queue bounded."""
    proc, url = playground_server
    port = int(url.rsplit(":", 1)[1].strip("/"))
    host = {"Host": f"127.0.0.1:{port}"}
    reader = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    reader.request("GET", "/events", headers=host)
    stream = reader.getresponse()

    def next_state():
        while True:
            line = stream.fp.readline()
            if line.startswith(b"data: "):
                return json.loads(line[6:])

    stalled = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    stalled.request("GET", "/events", headers=host)              # never read: its queue must stay bounded
    stalled.getresponse()
    config = {"depth": 10, "width": 256, "steps": 20000, "activation": "relu", "init": "he_normal"}
    assert _post(url, "train", {"config": config})[0] == 202
    while not any(r["config"]["depth"] == 10 and r["step"] > 0 for r in next_state()["runs"]):
        pass
    rss, counts, start = [], [], time.monotonic()
    while time.monotonic() - start < 7:
        state = next_state()
        counts.append((time.monotonic(), state["runs"][0]["step"]))
        rss.append(_rss_mib(proc.pid))
    window = [t for t, _ in counts if t - start >= 2]
    rate = (len(window) - 1) / (window[-1] - window[0])
    assert rate >= 5.0, f"{rate:.1f} updates/s"
    assert counts[-1][1] > counts[0][1] > 0
    early, late = max(rss[len(rss) // 4: len(rss) // 2]), max(rss[-len(rss) // 4:])
    assert late - early < 25, f"RSS grew from {early:.0f} to {late:.0f} MiB"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/info", headers=host)
    info = json.loads(conn.getresponse().read())["stream"]        # the stalled page may have timed out already
    assert 1 <= info["subscribers"] <= 2 and info["queued"] <= info["subscribers"] * info["capacity"]
    reader.close()
    stalled.close()
    print(f"{rate:.1f} updates/s at depth 10 width 256; server RSS {early:.0f} -> {late:.0f} MiB; "
          f"steps {counts[0][1]} -> {counts[-1][1]}")


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def _painted(page, selector: str) -> int:
    """How many pixels of the canvas at ``selector`` are painted (not transparent)."""
    return page.evaluate(f"""() => {{
        const c = document.querySelector({json.dumps(selector)});
        if (!c) return 0;
        const copy = document.createElement('canvas'); copy.width = c.width; copy.height = c.height;
        const ctx = copy.getContext('2d', {{ willReadFrequently: true }}); ctx.drawImage(c, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n;
    }}""")


def _assert_histograms_and_numbers_drawn(page, config: PlaygroundConfig) -> None:
    """Run A trains ``config`` and the page draws it: one histogram row per layer with painted bars, the
    step counter and a painted loss curve."""
    _wait(page, f"(() => {{ const a = window.__pg.last && window.__pg.last.runs[0]; return a && a.step > 30 && a.hist"
                f" && a.config.activation === {json.dumps(config.activation)}; }})()")
    _wait(page, "document.querySelectorAll('#run-A .hist-row canvas.now').length"
                " === window.__pg.last.runs[0].hist.layers.length")
    run = _run(page)
    assert run["config"] == config.to_dict()
    assert "no histograms yet" not in page.text_content("#run-A .hists")
    rows = page.eval_on_selector_all("#run-A .hist-row", "rows => rows.map(r => r.dataset.layer)")
    assert rows == run["hist"]["layers"] and len(rows) == config.depth
    for i in range(1, len(rows) + 1):
        assert _painted(page, f"#run-A .hist-row:nth-child({i}) canvas.now") > 100, rows[i - 1]
    shown, step = page.evaluate("() => [document.querySelector('#run-A .step').textContent,"
                                " document.querySelector('#run-A').dataset.step]")
    assert shown.startswith(f"step {step} / {config.steps}") and int(step) > 30, (shown, step)
    assert _painted(page, "#run-A canvas.curves") > 500


def test_changing_a_control_and_training_again_at_the_same_depth_draws_the_new_histograms(page, playground):
    first = PlaygroundConfig(activation="tanh", depth=3, width=32, steps=5000)
    _open(page, playground + "#" + to_fragment(first))
    page.click("#train")
    _assert_histograms_and_numbers_drawn(page, first)
    page.select_option("#cfg-activation", "relu")            # one control changed, the same depth
    page.click("#train")
    _assert_histograms_and_numbers_drawn(page, first.replace(activation="relu"))


def test_after_a_reload_the_controls_and_the_link_show_the_runs_on_screen(page, playground):
    trained = PlaygroundConfig(activation="sigmoid", init="glorot_normal", depth=2, width=32, steps=5000)
    _open(page, playground + "#" + to_fragment(trained))
    page.click("#train")
    _assert_histograms_and_numbers_drawn(page, trained)
    page.reload()                                           # the same URL, fragment included
    page.wait_for_selector("body[data-ready=true]")
    _assert_histograms_and_numbers_drawn(page, trained)
    _assert_controls_show(page, trained)
    page.goto(playground)                                   # the bare URL the command printed
    page.wait_for_selector("body[data-ready=true]")
    _assert_histograms_and_numbers_drawn(page, trained)
    _assert_controls_show(page, trained)


def _assert_controls_show(page, config: PlaygroundConfig) -> None:
    _wait(page, f"document.querySelector('#cfg-activation').value === {json.dumps(config.activation)}")
    for field, value in config.to_dict().items():
        shown = page.input_value(f"#cfg-{field}")
        assert (shown == value) if isinstance(value, str) else float(shown) == float(value), (field, shown, value)
    assert from_fragment(page.get_attribute("#share", "href").lstrip("#")) == config
    assert from_fragment(page.evaluate("location.hash").lstrip("#")) == config


def test_a_lesson_opens_from_the_first_page_trains_and_its_remedy_shows_which_change_helped(page, playground):
    """The zero-centred-inputs lesson: opened from the first page's list, trained to the end with its final
    numbers drawn, then its one-change remedy (centred inputs) beside it on shared y-scales."""
    _post(playground, "reset", {"config": PlaygroundConfig(depth=1, steps=100).to_dict()})
    _open(page, playground)
    assert page.is_visible("#hint") and "Apply" in page.text_content("#hint")
    titles = page.eval_on_selector_all("#lessons a", "links => links.map(a => a.textContent)")
    assert titles == [x.title for x in LESSONS]
    item = lesson("zigzag")
    page.click(f'#lessons a[data-lesson="{item.name}"]')
    _wait(page, f"document.querySelector('#lesson').dataset.lesson === {json.dumps(item.name)}")
    assert page.is_hidden("#hint") and item.look_for == page.text_content("#lesson .look-for")
    assert page.get_attribute("#lesson a.notebook", "href") == f"/notebooks/{item.notebook}"
    assert page.text_content("#lesson .section") == item.section
    assert page.evaluate("location.hash").endswith(f"&lesson={item.name}")
    page.click("#train")
    _assert_histograms_and_numbers_drawn(page, item.config)
    _wait(page, "window.__pg.last.runs[0].status === 'done'", timeout=60)
    _wait(page, "document.querySelector('#run-A .numbers').dataset.final === 'true'")
    a = _run(page)
    numbers = page.text_content("#run-A .numbers")
    assert f"{100 * a['final']['test_acc']:.1f} %" in numbers and f"{a['final']['train_loss']:.3f}" in numbers, numbers
    page.click('#run-A .finding[data-code="uncentered_inputs"] .apply-remedy[data-remedy="standardize_inputs"]')
    _wait(page, "(() => { const b = window.__pg.last.runs.find(r => r.label === 'B');"
                " return b && b.status === 'done' && b.final; })()", timeout=60)
    a, b = _run(page, "A"), _run(page, "B")
    assert b["config"] == {**a["config"], "inputs": "centred"}               # one change: the inputs' mean removed
    assert "centred" in page.text_content("#run-B .note")
    assert b["final"]["train_loss"] < a["final"]["train_loss"], (a["final"], b["final"])
    _wait(page, "document.querySelector('#run-B .numbers').dataset.final === 'true'")
    scale_a, scale_b = (page.get_attribute(f"#run-{x}", "data-loss-scale") for x in "AB")
    assert scale_a == scale_b and scale_a                                   # side by side, one loss scale
    top = float(scale_a.split(",")[1])
    assert top >= max(y for run in (a, b) for y in run["curve"]["loss"] if y is not None)
    _shot(page, "playground-lesson.png")
    source = page.evaluate(f"async () => (await fetch('/notebooks/{item.notebook}')).text()")
    assert f"# ## {item.section}" in source


def test_relu_layers_are_called_inactive_not_saturated(page, playground):
    config = PlaygroundConfig(activation="relu", depth=2, width=32, steps=5000)
    _open(page, playground + "#" + to_fragment(config))
    page.click("#train")
    _assert_histograms_and_numbers_drawn(page, config)
    _wait(page, "document.querySelector('#run-A').dataset.flat === 'inactive'")
    assert _run(page)["flat_name"] == ["inactive", "inactive"]
