"""DDP: 2 gloo processes on CPU, each watching its half of every batch; sync() equals one process on all data."""
from __future__ import annotations

import pickle
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from impediments import watch

STEPS, BATCH = 6, 16


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, 3))


def batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 5, generator=g), torch.randint(0, 3, (BATCH,), generator=g)) for _ in range(STEPS)]


def _worker(rank, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = make_model()
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.0)
        half = BATCH // 2
        with watch(model, optimizer=opt, every=1) as mon:
            for x, y in batches():
                xs, ys = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
                loss = F.cross_entropy(ddp(xs), ys)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.record_loss(loss)
        mon.sync()
        json_path = f"{out}.rank{rank}.json"
        mon.to_json(json_path)                       # rank 0 writes; rank 1 writes nothing
        report = mon.report()
        if rank == 0:
            with open(out, "wb") as f:
                pickle.dump((mon.stats(), report is not None, open(json_path).read()), f)
        else:
            assert report is None
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_sync_equals_single_process(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    out = tmp_path / "rank0.pkl"
    # fork: the children inherit the imported package (spawn would re-import it, several seconds each)
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    merged, reported, written = pickle.loads(out.read_bytes())
    assert reported and '"steps": 6' in written                       # report and JSON on rank 0 ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.pkl", "rank0.pkl.rank0.json"]   # ... only

    model = make_model()   # one process over the same data: the two halves of each batch, same weights
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    half = BATCH // 2
    with watch(model, optimizer=opt, every=1) as mon:
        for x, y in batches():
            opt.zero_grad()
            for r in range(2):
                loss = F.cross_entropy(model(x[r * half:(r + 1) * half]), y[r * half:(r + 1) * half])
                loss.backward()
                mon.record_loss(loss)
            opt.step()
    ref = mon.stats()
    assert merged.activations.keys() == ref.activations.keys() and merged.layers.keys() == ref.layers.keys()
    for name, r in ref.activations.items():
        m = merged.activations[name]
        assert m.histogram == r.histogram                      # exact
        assert m.unit_active_counts == r.unit_active_counts and m.unit_total == r.unit_total
        assert m.output.count == r.output.count and m.output.nonfinite == r.output.nonfinite
        assert (m.output.min, m.output.max) == (r.output.min, r.output.max)
        assert m.output.mean == pytest.approx(r.output.mean, rel=1e-9)
        assert m.output.var == pytest.approx(r.output.var, rel=1e-9)
        assert m.input.var == pytest.approx(r.input.var, rel=1e-9)
    for name, r in ref.layers.items():
        assert merged.layers[name].output.count == r.output.count
        assert merged.layers[name].output.var == pytest.approx(r.output.var, rel=1e-9)
    # the first step's moments (init_scale_too_large, no_nonlinearity read them): merged across the processes as one
    # process records them; the stored weight's against brute force on the same init
    init = dict(make_model().named_modules())
    for name, r in ref.layers.items():
        m = merged.layers[name]
        for key in ("input_at_init", "output_at_init", "weight_at_init"):
            got, want = getattr(m, key), getattr(r, key)
            assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-12), (name, key)
            assert got.var == pytest.approx(want.var, rel=1e-9), (name, key)
        w = init[name].weight.detach().double()
        assert m.weight_at_init.mean == pytest.approx(float(w.mean()), abs=1e-7)
        assert m.weight_at_init.var == pytest.approx(float(w.var(unbiased=False)), rel=1e-5)
    assert merged.inputs.count == ref.inputs.count == STEPS * BATCH
    assert merged.inputs.mean == pytest.approx(ref.inputs.mean, rel=1e-9)
    assert merged.loss.count == ref.loss.count == 2 * STEPS
    assert sum(merged.loss.window_means) == pytest.approx(sum(ref.loss.window_means), rel=1e-9)
