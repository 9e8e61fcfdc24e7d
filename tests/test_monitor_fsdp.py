"""FSDP2, tensor parallelism and FSDP2 + TP: gloo processes on CPU (fork), ``sync()`` equal to one process.

Each sharded run watches a model whose parameters are ``DTensor``\\ s; after ``mon.sync()`` its statistics
must equal those of one process over the same data with the same weights (float tolerance; counts,
dead units and symmetry groups exactly), and the doctor's findings must be identical. The model has
two units of the first layer with identical rows on different shards (a symmetry group across ranks),
two rows of the second layer identical across its column shards (each pair with identical outgoing
weights, so they stay identical), and two dead units.
"""
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
from impediments.doctor import diagnose

STEPS, BATCH, LR = 5, 16, 0.05
REL = 1e-5


def make_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        model[0].weight[12] = model[0].weight[3]      # rows on the two shards of a Colwise / FSDP split
        model[0].bias[12] = model[0].bias[3]
        model[0].bias[[5, 9]] = -50.0                  # dead units, one per shard
        model[2].weight[:, 12] = model[2].weight[:, 3]  # ... with the same outgoing weights: they stay so
        model[2].weight[7] = model[2].weight[1]        # rows split by columns under Rowwise
        model[2].bias[7] = model[2].bias[1]
        model[4].weight[:, 7] = model[4].weight[:, 1]
    return model


def batches():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(BATCH, 6, generator=g), torch.randint(0, 3, (BATCH,), generator=g)) for _ in range(STEPS)]


def shard_model(model, mode: str, rank: int):
    """Apply FSDP2 / TP / both; returns ``(model, data-parallel rank, data-parallel size)``."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    plan = {"0": ColwiseParallel(), "2": RowwiseParallel()}
    if mode == "fsdp":
        mesh = init_device_mesh("cpu", (2,))
        for m in model:
            if isinstance(m, nn.Linear):
                fully_shard(m, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model, rank, 2
    if mode == "tp":
        parallelize_module(model, init_device_mesh("cpu", (2,)), plan)
        return model, 0, 1
    mesh = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "tp"))
    parallelize_module(model, mesh["tp"], plan)
    for m in model:
        if isinstance(m, nn.Linear):
            fully_shard(m, mesh=mesh["dp"])
    fully_shard(model, mesh=mesh["dp"])
    return model, mesh["dp"].get_local_rank(), 2


def train(model, mon_args: dict, dp_rank: int, dp_size: int, forward):
    """``STEPS`` SGD steps on this data-parallel rank's part of each batch, watched; returns the monitor."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    part = BATCH // dp_size
    with watch(model, optimizer=opt, **mon_args) as mon:
        for x, y in batches():
            opt.zero_grad()
            forward(model, x[dp_rank * part:(dp_rank + 1) * part], y[dp_rank * part:(dp_rank + 1) * part])
            opt.step()
    return mon


def _sharded_forward(model, x, y):
    F.cross_entropy(model(x), y).backward()


def _worker(rank, world, port, mode, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, dp_rank, dp_size = shard_model(make_model(), mode, rank)
        mon = train(model, {"every": 1}, dp_rank, dp_size, _sharded_forward)
        mon.sync()
        if rank == 0:
            with open(out, "wb") as f:
                pickle.dump(mon.stats(), f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(dp_size: int):
    """One process, same weights and batches; each batch in ``dp_size`` parts as the data-parallel ranks
    see it (mean losses averaged: the gradient FSDP2 averages across its ranks)."""
    def forward(model, x, y):
        part = BATCH // dp_size
        for r in range(dp_size):
            (F.cross_entropy(model(x[r * part:(r + 1) * part]), y[r * part:(r + 1) * part]) / dp_size).backward()

    return train(make_model(), {"every": 1}, 0, 1, forward).stats()


def run_sharded(mode: str, world: int, tmp_path):
    out = tmp_path / f"{mode}.pkl"
    mp.start_processes(_worker, args=(world, _free_port(), mode, str(out)), nprocs=world, join=True,
                       start_method="fork")
    return pickle.loads(out.read_bytes())


def assert_same_statistics(merged, ref, dp_size: int):
    assert merged.params.keys() == ref.params.keys() == {f"{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")}
    for name, r in ref.params.items():
        m = merged.params[name]
        assert m.samples * 0 == 0 and m.grad_norm == pytest.approx(r.grad_norm, rel=REL), name
        assert m.grad_norm_max == pytest.approx(r.grad_norm_max, rel=REL), name
        assert m.weight_norm == pytest.approx(r.weight_norm, rel=REL), name
        assert m.grad_to_weight == pytest.approx(r.grad_to_weight, rel=REL), name
        assert m.update_to_weight == pytest.approx(r.update_to_weight, rel=1e-4), name
    assert merged.params["0.weight"].sign_agreement == pytest.approx(ref.params["0.weight"].sign_agreement, rel=REL)
    assert merged.activations.keys() == ref.activations.keys() == {"1", "3"}
    for name, r in ref.activations.items():
        m = merged.activations[name]
        assert (m.units, m.unit_total, m.samples) == (r.units, r.unit_total, r.samples) == (16, m.unit_total, m.samples)
        assert m.unit_active_counts == r.unit_active_counts and m.dead_units == r.dead_units
        assert m.input.count == r.input.count
        assert m.input.mean == pytest.approx(r.input.mean, rel=REL, abs=1e-7)
        assert m.input.var == pytest.approx(r.input.var, rel=REL)
        assert m.output.var == pytest.approx(r.output.var, rel=REL)
        assert m.values_per_example == r.values_per_example
    assert ref.activations["1"].dead_units == [5, 9]
    assert merged.layers.keys() == ref.layers.keys()
    for name, r in ref.layers.items():
        m = merged.layers[name]
        assert m.output.count == r.output.count and m.positions == r.positions and m.fan_in == r.fan_in
        assert m.kind == r.kind == "Linear", name          # the user's class, not FSDP2's FSDPLinear
        assert m.output.var == pytest.approx(r.output.var, rel=REL)
        # each rank's loss is the mean over its part (FSDP2 averages the gradients over ranks); the
        # reference divides each part's loss by dp_size instead, which scales dL/dy by 1/dp_size
        assert m.grad_var == pytest.approx(r.grad_var * dp_size ** 2, rel=REL)
        assert m.output_at_init.var == pytest.approx(r.output_at_init.var, rel=REL)
        assert m.input_at_init.count == r.input_at_init.count
    assert {n: s.groups for n, s in merged.symmetry.items()} == {n: s.groups for n, s in ref.symmetry.items()}
    assert ref.symmetry["0"].groups == [[3, 12]] and ref.symmetry["2"].groups == [[1, 7]]
    for name, r in ref.loop.params.items():
        m = merged.loop.params[name]
        assert m.changed == r.changed and m.weight_norm == pytest.approx(r.weight_norm, rel=REL)
    # the findings of plain one-process training on whole batches (the reference above accumulates two
    # backward passes per step, which the loop checks rightly see)
    plain = train(make_model(), {"every": 1}, 0, 1, _sharded_forward).stats()
    assert sorted((f.code, f.where) for f in diagnose(merged).findings) == \
        sorted((f.code, f.where) for f in diagnose(plain).findings)
    assert {f.code for f in diagnose(merged).findings} >= {"dead_units", "symmetric_units"}


@pytest.mark.parametrize("mode,world,dp_size", [("fsdp", 2, 2), ("tp", 2, 1), ("fsdp_tp", 4, 2)])
def test_sharded_sync_equals_single_process(mode, world, dp_size, tmp_path):
    assert_same_statistics(run_sharded(mode, world, tmp_path), reference(dp_size), dp_size)


COLLECTIVES = {"dist": ("all_reduce", "all_gather", "all_gather_into_tensor", "all_gather_object", "broadcast",
                        "reduce_scatter_tensor"),
               "funcol": ("all_reduce", "all_gather_tensor", "all_gather_tensor_autograd", "reduce_scatter_tensor")}


def _count_collectives(calls: list, step: list) -> None:
    """Wrap ``torch.distributed``'s and the functional collectives (what ``DTensor.redistribute`` calls) to
    log ``(step, name, elements)`` of every call made from the monitor's code (found on the stack)."""
    import traceback

    import torch.distributed._functional_collectives as funcol

    for module, names in ((dist, COLLECTIVES["dist"]), (funcol, COLLECTIVES["funcol"])):
        for name in names:
            original = getattr(module, name)

            def counted(*args, _original=original, _name=name, **kwargs):
                if any("/impediments/monitor/" in frame.filename for frame in traceback.extract_stack()):
                    first = args[0] if args else None
                    calls.append((step[0], _name, first.numel() if isinstance(first, torch.Tensor) else -1))
                return _original(*args, **kwargs)

            setattr(module, name, counted)


def _counting_worker(rank, world, port, mode, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, dp_rank, dp_size = shard_model(make_model(), mode, rank)
        calls, step = [], ["enter"]
        _count_collectives(calls, step)
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        part = BATCH // dp_size
        with watch(model, optimizer=opt, every=3) as mon:      # steps 0 and 3 sampled
            for i, (x, y) in enumerate(batches() + batches()[:1]):
                step[0] = i
                opt.zero_grad()
                F.cross_entropy(model(x[dp_rank * part:(dp_rank + 1) * part]), y[dp_rank * part:(dp_rank + 1) * part]).backward()
                opt.step()
            step[0] = "exit"
        if rank == 0:
            with open(out, "wb") as f:
                pickle.dump((calls, max(p.numel() for p in model.parameters())), f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("mode", ["fsdp", "tp"])
def test_collectives_only_on_sampled_steps_and_never_a_parameter_gather(mode, tmp_path):
    out = tmp_path / "calls.pkl"
    mp.start_processes(_counting_worker, args=(2, _free_port(), mode, str(out)), nprocs=2, join=True,
                       start_method="fork")
    calls, largest = pickle.loads(out.read_bytes())
    steps = {s for s, _, _ in calls}
    assert {0, 3} <= steps <= {0, 3, "exit"}, calls          # sampled steps (and one merge on exit) only
    assert sum(s == "exit" for s, _, _ in calls) == 1        # the fingerprints' merge: one all-reduce
    assert {name for _, name, _ in calls} == {"all_reduce"}, calls   # no gather of any kind
    if mode == "fsdp":   # vectors of per-parameter sums and per-row sums: smaller than any weight matrix
        assert max(n for _, _, n in calls) < largest, (calls, largest)
    else:                # TP: a Rowwise output is summed once more to read it (batch x units)
        assert max(n for _, _, n in calls) <= BATCH * 16, calls


class TinyGPT(nn.Module):
    """A GPT-style model (Radford et al. 2019): token and position embeddings, pre-norm blocks of causal
    self-attention and a GELU MLP, a final LayerNorm and a linear head; tiny, for 2 cores."""

    def __init__(self, vocab=32, d=32, heads=4, blocks=2, tokens=16, std=0.02):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(tokens, d)
        self.blocks = nn.ModuleList(TinyBlock(d, heads) for _ in range(blocks))
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln(x)).flatten(0, 1)


class TinyBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.head_dim = d // heads

    def forward(self, x):
        n, t, _ = x.shape
        a = self.ln1(x)        # heads split as the Colwise q/k/v split units: -1 is this rank's heads
        q, k, v = (m(a).view(n, t, -1, self.head_dim).transpose(1, 2) for m in (self.q, self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(n, t, -1)
        x = x + self.o(y)
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


GPT_STEPS, GPT_BATCH = 40, 8
GPT_CASES = {"healthy": (0.02, 3e-3), "init std 1.0": (1.0, 3e-3), "lr 100x": (0.02, 0.3)}


def gpt_batches():
    """Sequences counting up from a random start (mod 32): a next token to learn."""
    g = torch.Generator().manual_seed(2)
    starts = torch.randint(0, 32, (GPT_STEPS, GPT_BATCH, 1), generator=g)
    ids = (starts + torch.arange(17)) % 32
    return [(s[:, :-1], s[:, 1:].flatten()) for s in ids]


def gpt_findings(std: float, lr: float, tp_mesh=None, fsdp_mesh=None) -> list:
    """The findings (code, severity, where) of ``GPT_STEPS`` AdamW steps; ``tp_mesh``: the blocks' Linears
    tensor-parallel over it; ``fsdp_mesh``: every block, the embeddings and the root ``fully_shard`` over it,
    each rank training on its half of every batch (FSDP2 averages the gradients: the whole batch's)."""
    torch.manual_seed(0)
    model = TinyGPT(std=std)
    rank, ranks = 0, 1
    if fsdp_mesh is not None:
        from torch.distributed.fsdp import fully_shard

        for m in (model.tok, model.pos, *model.blocks, model.head):
            fully_shard(m, mesh=fsdp_mesh)
        fully_shard(model, mesh=fsdp_mesh)
        rank, ranks = fsdp_mesh.get_local_rank(), fsdp_mesh.size()
    if tp_mesh is not None:
        from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

        for b in model.blocks:
            parallelize_module(b, tp_mesh, {"q": ColwiseParallel(), "k": ColwiseParallel(), "v": ColwiseParallel(),
                                            "o": RowwiseParallel(), "fc": ColwiseParallel(),
                                            "proj": RowwiseParallel()})
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    part = GPT_BATCH // ranks
    with watch(model, optimizer=opt) as mon:
        for x, y in gpt_batches():
            opt.zero_grad()
            y = y.view(GPT_BATCH, -1)[rank * part:(rank + 1) * part].flatten()
            F.cross_entropy(model(x[rank * part:(rank + 1) * part]), y).backward()
            opt.step()
    if tp_mesh is not None or fsdp_mesh is not None:
        mon.sync()
    return sorted((f.code, f.severity, tuple(f.where)) for f in diagnose(mon.stats()).findings)


def _gpt_worker(rank, world, port, out, mode="tp"):
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        mesh = init_device_mesh("cpu", (2,))
        meshes = {"tp_mesh": mesh} if mode == "tp" else {"fsdp_mesh": mesh}
        found = {case: gpt_findings(std, lr, **meshes) for case, (std, lr) in GPT_CASES.items()}
        if rank == 0:
            with open(out, "wb") as f:
                pickle.dump(found, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_tensor_parallel_gpt_gets_the_findings_of_one_process(tmp_path):
    out = tmp_path / "gpt.pkl"
    mp.start_processes(_gpt_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True, start_method="fork")
    sharded = pickle.loads(out.read_bytes())
    for case, (std, lr) in GPT_CASES.items():
        assert sharded[case] == gpt_findings(std, lr), case
    assert not [f for f in sharded["healthy"] if f[1] != "info"], sharded["healthy"]
    assert [f for f in sharded["init std 1.0"] if f[1] != "info"] and [f for f in sharded["lr 100x"] if f[1] != "info"]


def test_fsdp2_gpt_gets_the_findings_of_one_process(tmp_path):
    """Issue 26's "Done when": the GPT-style model sharded by FSDP2 (embeddings, blocks, head and root) on 2
    gloo processes, each training on half of every batch, gets the findings of one process training on the
    whole batches: none above info when healthy, the same ones at init std 1.0 and at a learning rate 100x."""
    out = tmp_path / "gpt_fsdp.pkl"
    mp.start_processes(_gpt_worker, args=(2, _free_port(), str(out), "fsdp"), nprocs=2, join=True,
                       start_method="fork")
    sharded = pickle.loads(out.read_bytes())
    for case, (std, lr) in GPT_CASES.items():
        assert sharded[case] == gpt_findings(std, lr), case
    assert not [f for f in sharded["healthy"] if f[1] != "info"], sharded["healthy"]
    assert [f for f in sharded["init std 1.0"] if f[1] != "info"] and [f for f in sharded["lr 100x"] if f[1] != "info"]


def _lightning_module(mode: str | None):
    import pytorch_lightning as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_model()

        def configure_model(self):
            from torch.distributed.fsdp import fully_shard
            from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

            if mode == "tp":
                parallelize_module(self.net, self.device_mesh["tensor_parallel"],
                                   {"0": ColwiseParallel(), "2": RowwiseParallel()})
            elif mode == "fsdp":
                for m in self.net:
                    if isinstance(m, nn.Linear):
                        fully_shard(m, mesh=self.device_mesh["data_parallel"])
                fully_shard(self.net, mesh=self.device_mesh["data_parallel"])

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, i):
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    return Module()


def fit_lightning(mode: str | None, devices: int, folder):
    """``STEPS`` steps of the Lightning module with the Doctor callback; the report (rank 0)."""
    import pytorch_lightning as pl

    from impediments.integrations.lightning import Doctor

    import os

    x, y = (torch.cat(t) for t in zip(*batches()))
    data = torch.utils.data.TensorDataset(x, y)
    dp = devices if mode == "fsdp" else 1                 # each data-parallel rank: every other example, in order
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=dp, rank=int(os.environ.get("RANK", 0)) % dp,
                                                  shuffle=False)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH // dp, sampler=sampler)
    doctor = Doctor(every=1, out_dir=str(folder), echo=False)
    strategy = "auto"
    if mode is not None:
        from pytorch_lightning.strategies import ModelParallelStrategy

        strategy = ModelParallelStrategy(data_parallel_size=devices if mode == "fsdp" else 1,
                                         tensor_parallel_size=devices if mode == "tp" else 1)
    trainer = pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS, callbacks=[doctor],
                         use_distributed_sampler=False,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(_lightning_module(mode), loader)
    return doctor.report


def _lightning_worker(rank, port, mode, folder):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank),
                      LOCAL_RANK=str(rank), NODE_RANK="0")     # processes made outside Lightning, as torchrun does
    torch.set_num_threads(1)
    report = fit_lightning(mode, 2, folder)
    if rank == 0:
        with open(f"{folder}/stats.pkl", "wb") as f:
            pickle.dump(report.stats, f)


@pytest.mark.parametrize("mode", ["fsdp", "tp"])
def test_lightning_model_parallel_strategy_equals_one_process(mode, tmp_path):
    mp.start_processes(_lightning_worker, args=(_free_port(), mode, str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    merged = pickle.loads((tmp_path / "stats.pkl").read_bytes())
    ref = fit_lightning(None, 1, tmp_path / "one").stats
    names = {f"net.{i}.{k}" for i in (0, 2, 4) for k in ("weight", "bias")}
    assert merged.params.keys() == ref.params.keys() == names             # the user's names, not FSDP's
    for name, r in ref.params.items():
        assert merged.params[name].grad_norm == pytest.approx(r.grad_norm, rel=REL), name
        assert merged.params[name].update_to_weight == pytest.approx(r.update_to_weight, rel=1e-4), name
    for name, r in ref.activations.items():
        m = merged.activations[name]
        assert (m.units, m.dead_units, m.unit_active_counts) == (r.units, r.dead_units, r.unit_active_counts)
        assert m.input.var == pytest.approx(r.input.var, rel=REL)
    assert {n: s.groups for n, s in merged.symmetry.items()} == {n: s.groups for n, s in ref.symmetry.items()}
