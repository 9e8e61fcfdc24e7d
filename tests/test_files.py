"""``impediments._files.write_atomic``: the one atomic writer that data, monitor, doctor and experiments use."""
from __future__ import annotations

import os

import pytest

from impediments._files import write_atomic


def test_write_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "out.json"
    write_atomic(target, "old")
    write_atomic(target, b"\x00new bytes")
    assert target.read_bytes() == b"\x00new bytes" and os.listdir(tmp_path) == ["out.json"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)       # not mkstemp's private mode


def test_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "stats.json"
    write_atomic(target, "complete old content")

    def crash(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "half of the new")
    assert target.read_text() == "complete old content" and os.listdir(tmp_path) == ["stats.json"]


def test_missing_folder_is_an_error_unless_asked_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_atomic(tmp_path / "no" / "such" / "file.txt", "x")
    assert write_atomic(tmp_path / "a" / "b" / "f.txt", "x", make_parents=True).read_text() == "x"


def test_monitor_to_json_is_atomic(tmp_path, monkeypatch):
    import torch
    from torch import nn

    from impediments import watch
    from impediments.monitor.export import from_json

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    with watch(model) as mon:
        model(torch.randn(5, 3)).sum().backward()
    path = tmp_path / "m.json"
    mon.to_json(path)
    before = path.read_text()
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        mon.to_json(path)
    assert path.read_text() == before and from_json(path).steps == 1 and os.listdir(tmp_path) == ["m.json"]
