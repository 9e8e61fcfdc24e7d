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
