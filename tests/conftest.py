import functools
import os
import socket

os.environ.setdefault("MPLBACKEND", "agg")

import pytest
import torch

torch.set_num_threads(1)


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
