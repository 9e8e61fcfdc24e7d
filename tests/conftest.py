import functools
import os
import shutil
import socket

os.environ.setdefault("MPLBACKEND", "agg")

import pytest
import torch

torch.set_num_threads(1)


class NaNGrad(torch.autograd.Function):
    """The identity forward; a NaN gradient backward (an undefined derivative)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


class Fragile(torch.nn.Module):
    """Its backward makes ``a``'s gradient NaN at the steps where ``poison`` is set (an undefined derivative:
    the loss and the output stay finite)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
        self.poison = False

    def forward(self, x):
        h = self.a(x)
        return self.b(NaNGrad.apply(h) if self.poison else h)


@pytest.fixture
def fragile():
    """``fragile() -> Fragile``: a two-layer model whose gradient turns NaN on demand."""
    return Fragile


class NetworkAccessError(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Make any attempt to open a socket fail loudly."""

    def guard(*args, **kwargs):
        raise NetworkAccessError("test tried to open a network socket")

    monkeypatch.setattr(socket, "socket", guard)
    monkeypatch.setattr(socket, "create_connection", guard)
    yield


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def quick_run():
    """``quick_run(name, seed) -> (module, result)``: each experiment runs once per session and seed in quick mode.

    Shared by ``test_experiments_common.py`` and the part-specific experiment tests, so that a
    (name, seed) pair is never run twice in one session.
    """
    from impediments import experiments

    @functools.lru_cache(maxsize=None)
    def run(name: str, seed: int):
        module = experiments.get(name)
        return module, module.run(module.Config.quick(seed))

    return run


#: Debian's chromium, driven by Playwright through ``executable_path`` (never ``playwright install``)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions"]


@pytest.fixture(scope="module")
def browser():
    """One headless Debian chromium per test module; fails (never skips) where it is missing."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium: `make test` installs it, or run "
                    "`apt-get install -y chromium` (never `playwright install`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()
