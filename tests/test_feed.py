"""The live feed shared by the notebook view and the browser's live doctor (impediments.report.feed)."""
from __future__ import annotations

import time

import torch
from torch import nn

from impediments.doctor import diagnose
from impediments.monitor import Monitor
from impediments.playground.live import LiveFeed
from impediments.report.display import NotebookFeed
from impediments.report.feed import COST_FACTOR, MIN_INTERVAL_S, Feed


class Recorder(Feed):
    """A view that keeps what it was shown (and can be made slow, to exercise the cost bound)."""

    def __init__(self, monitor, model, delay_s: float = 0.0) -> None:
        super().__init__(monitor, model)
        self.delay_s, self.shown, self.times = delay_s, [], []

    def show(self, stats, report) -> None:
        self.times.append((time.monotonic(), self.cost_s))        # when, and the cost of the updates before it
        time.sleep(self.delay_s)
        self.shown.append((self.updates, self.training, stats.sampled_steps, stats.steps,
                           [f.code for f in report.findings]))


def _saturating_model() -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3))
    with torch.no_grad():
        model[0].weight.mul_(40)            # tanh inputs far in its flat tails
    return model, torch.optim.SGD(model.parameters(), lr=0.05)


def _train(model, opt, steps: int, before_step=lambda: None) -> None:
    X, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    for _ in range(steps):
        before_step()
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()


def test_feed_shows_the_monitors_sampled_steps_and_the_doctors_verdict_then_a_final_state():
    model, opt = _saturating_model()
    hooks_before = len(model._forward_pre_hooks)
    with Monitor(model, optimizer=opt, every=1) as mon:
        feed = Recorder(mon, model).attach()
        _train(model, opt, 1)
        assert [s[:4] for s in feed.shown] == [(1, True, 0, 0)]   # the first forward: nothing sampled yet
        feed._next_time = 0.0                                      # (skip the wait: the bound is tested below)
        _train(model, opt, 1)                                     # this forward follows sampled step 1
        assert [s[:4] for s in feed.shown] == [(1, True, 0, 0), (2, True, 1, 1)]
        model.eval()
        model(torch.randn(4, 8))                                  # an eval forward never updates
        model.train()
        feed.detach()
        feed.detach()                                             # idempotent
        last = feed.shown[-1]
        assert last[1] is False and last[3] == mon.stats().steps and "saturated_units" in last[4]
        assert last[4] == [f.code for f in diagnose(mon.stats()).findings]   # the doctor's verdict, as is
    assert len(model._forward_pre_hooks) == hooks_before          # the feed's hook is gone


def test_feed_waits_cost_factor_times_each_updates_cost():
    model, opt = _saturating_model()
    with Monitor(model, optimizer=opt, every=1) as mon:
        feed = Recorder(mon, model, delay_s=0.02).attach()       # each update costs >= 20 ms
        start = time.monotonic()
        _train(model, opt, 150, before_step=lambda: time.sleep(0.005))
        elapsed = time.monotonic() - start
        feed.detach()
    shown_while_training = [s for s in feed.shown if s[1]]
    assert len(shown_while_training) >= 2
    # each update waits max(MIN_INTERVAL_S, COST_FACTOR * cost) >= 0.4 s here: at most elapsed / 0.4 + 1 updates
    assert len(shown_while_training) <= elapsed / max(MIN_INTERVAL_S, COST_FACTOR * 0.02) + 1
    # every update before the k-th was followed by its wait: their cost is at most 1/COST_FACTOR of the time
    for when, cost_before in feed.times[1:len(shown_while_training)]:
        assert cost_before <= (when - start) / COST_FACTOR


def test_both_live_views_share_the_feed_and_only_draw():
    for view in (NotebookFeed, LiveFeed):
        assert issubclass(view, Feed)
        assert "show" in vars(view)
        assert not {"attach", "update", "detach", "_before_forward"} & set(vars(view)), view
