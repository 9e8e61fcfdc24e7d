"""``to_tensorboard`` against the real ``torch.utils.tensorboard.SummaryWriter``: write an event file,
read it back with TensorBoard's own ``EventAccumulator`` and compare with the stats it came from.

``make test`` installs the ``tensorboard`` extra, so this runs there; the importorskip is only a guard
for environments installed without the extra.
"""
import pytest

pytest.importorskip("tensorboard")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

import impediments  # noqa: E402
from impediments.monitor.export import to_tensorboard  # noqa: E402

STEPS = 4


def _f32(x):
    """Scalar summaries are stored as float32."""
    return pytest.approx(x, rel=1e-6, abs=1e-12)


@pytest.fixture(scope="module")
def stats():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    with impediments.watch(model, optimizer=opt, every=1) as mon:
        for _ in range(STEPS):
            loss = model(torch.randn(8, 6, generator=g)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.record_loss(loss)
    return mon.stats()


@pytest.fixture(scope="module")
def exported(stats, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("tb")
    writer = SummaryWriter(str(logdir))
    try:
        n = to_tensorboard(stats, writer)
    finally:
        writer.close()
    acc = EventAccumulator(str(logdir), size_guidance={k: 0 for k in (
        "compressedHistograms", "images", "audio", "scalars", "histograms", "tensors")})
    acc.Reload()
    return n, acc


def test_event_count_matches_return_value(stats, exported):
    n, acc = exported
    tags = acc.Tags()
    read = sum(len(acc.Scalars(t)) for t in tags["scalars"]) + sum(len(acc.Histograms(t)) for t in tags["histograms"])
    assert n == read > 0
    assert set(tags["histograms"]) == {"activations/1/output", "activations/3/output",
                                       "activations_over_time/1", "activations_over_time/3"}


def test_histograms_over_time_are_the_windows_and_add_up_to_the_total(stats, exported):
    """One histogram per window at its end step (TensorBoard's over-time view); the windows partition
    the run, so their counts add up to the whole run's histogram."""
    _, acc = exported
    for name in ("1", "3"):
        events = acc.Histograms(f"activations_over_time/{name}")
        windows = [w for w in stats.windows if sum(w.histograms.get(name, [])) > 0]
        assert [ev.step for ev in events] == [w.end_step for w in windows] and len(windows) == STEPS
        for ev, w in zip(events, windows):
            assert [int(c) for c in ev.histogram_value.bucket] == w.histograms[name]
        total = [sum(col) for col in zip(*(w.histograms[name] for w in windows))]
        assert total == stats.activations[name].histogram.counts


def test_scalars_read_back_equal_the_stats(stats, exported):
    _, acc = exported
    tags = set(acc.Tags()["scalars"])

    def only(tag):
        assert tag in tags, sorted(tags)
        (ev,) = acc.Scalars(tag)
        return ev

    for name in ("1", "3"):
        a = stats.activations[name]
        for k, want in (("output_var", a.output.var), ("output_mean", a.output.mean),
                        ("saturated_fraction", a.saturated_fraction), ("dead_units", float(len(a.dead_units)))):
            ev = only(f"activations/{name}/{k}")
            assert ev.step == stats.steps == STEPS and ev.value == _f32(want)
    for pname, p in stats.params.items():
        for k in ("grad_norm", "grad_to_weight", "update_to_weight"):
            assert only(f"params/{pname}/{k}").value == _f32(getattr(p, k))
    loss = acc.Scalars("loss/window_mean")
    assert [(e.step, e.value) for e in loss] == [(w.end_step, _f32(w.loss_mean)) for w in stats.windows]
    assert len(loss) == STEPS


def test_histograms_read_back_equal_the_monitor_counts(stats, exported):
    _, acc = exported
    for name in ("1", "3"):
        a = stats.activations[name]
        (ev,) = acc.Histograms(f"activations/{name}/output")
        h = ev.histogram_value
        assert ev.step == STEPS
        assert len(h.bucket) == len(h.bucket_limit) == len(a.histogram.counts)
        assert [int(c) for c in h.bucket] == a.histogram.counts
        assert sum(h.bucket) == h.num == sum(a.histogram.counts) == a.output.count > 0   # tiny tensors: no subsample
        assert h.min == a.output.min and h.max == a.output.max
        assert list(h.bucket_limit) == a.histogram.edges[1:]


def test_histogram_bounds_stay_finite_when_the_activation_saw_nan_and_inf(tmp_path):
    """The moments turn NaN after a non-finite value; the histogram's min/max (which TensorBoard uses
    as the outer bucket edges) fall back to the outer non-empty bucket edges instead of NaN."""
    model = nn.Sequential(nn.ReLU())
    with impediments.watch(model, every=1) as mon:
        model(torch.tensor([1.0, float("inf"), -2.0, float("nan"), 0.5]))
    s = mon.stats()
    a = s.activations["0"]
    writer = SummaryWriter(str(tmp_path))
    try:
        to_tensorboard(s, writer)
    finally:
        writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    (ev,) = acc.Histograms("activations/0/output")
    h = ev.histogram_value
    assert sum(h.bucket) == h.num == sum(a.histogram.counts) == 3          # 1.0, 0 (from -2.0), 0.5
    nz = [i for i, c in enumerate(a.histogram.counts) if c]
    assert (h.min, h.max) == (a.histogram.edges[nz[0]], a.histogram.edges[nz[-1] + 1])
    assert h.min <= 0 < 1.0 <= h.max


def test_monitor_method_and_cli_write_a_log_folder(tmp_path, capsys):
    """``mon.to_tensorboard(folder)`` and ``impediments doctor SPEC --tensorboard DIR`` create readable runs."""
    from pathlib import Path

    from impediments.cli import main

    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with impediments.watch(model, every=1) as mon:
        for _ in range(3):
            model(torch.randn(5, 4)).sum().backward()
    n = mon.to_tensorboard(tmp_path / "run")
    acc = EventAccumulator(str(tmp_path / "run"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    assert n == sum(len(acc.Scalars(t)) for t in acc.Tags()["scalars"]) + sum(
        len(acc.Histograms(t)) for t in acc.Tags()["histograms"]) > 0
    spec = Path(__file__).resolve().parents[1] / "examples" / "healthy_mlp.py"
    assert main(["doctor", str(spec), "--steps", "12", "--tensorboard", str(tmp_path / "cli")]) == 0
    assert "TensorBoard events" in capsys.readouterr().out
    acc = EventAccumulator(str(tmp_path / "cli"), size_guidance={"histograms": 0, "scalars": 0})
    acc.Reload()
    assert "activations/hidden1.act/output" in acc.Tags()["histograms"]
