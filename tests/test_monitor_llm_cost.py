"""The monitor's cost on LLM-sized models, by design (issue 26): what unsampled steps read, and the
update ratio of a large parameter from a fixed sample of its values.

References: brute force (a full copy of the parameter before the step) for the update norm, and the
closed-form standard deviation of the sampled estimate (:mod:`impediments.monitor.probes.params`).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impediments import watch
from impediments.monitor.probes import params as P


def relative_sd(delta: torch.Tensor, k: int) -> float:
    """The relative standard deviation of the sampled estimate of ``|delta|^2`` (module doc of params)."""
    x = delta.double().reshape(-1) ** 2
    return math.sqrt((x.numel() * (x ** 2).sum() / x.sum() ** 2 - 1) / k)


def test_small_parameters_are_copied_whole_and_exact():
    assert P.update_sample(P.EXACT_UPDATE_VALUES, 0) is None
    before = torch.randn(256, 256)
    after = before - 1e-3 * torch.randn(256, 256)
    got = P.update_norm_squared(before, after, None)
    assert got == pytest.approx(float(((after.double() - before.double()) ** 2).sum()), rel=1e-12)


@pytest.mark.parametrize("changed_rows", [None, 64])
def test_sampled_update_norm_is_within_its_standard_deviation_of_the_full_copy(changed_rows):
    """A dense update, and an embedding's (only the rows of the batch's tokens move): the estimate from
    the fixed sample is within 4 standard deviations of the full copy's value, and that deviation is the
    module doc's (about sqrt(2/k) dense, sqrt((3 n/n_changed - 1)/k) row-sparse)."""
    g = torch.Generator().manual_seed(0)
    rows, cols = 4000, 300                               # 1.2M values: a sample of max(2^14, n/64) = 18750
    before = torch.randn(rows, cols, generator=g)
    delta = torch.randn(rows, cols, generator=g) * 1e-3
    if changed_rows is not None:
        keep = torch.zeros(rows, 1)
        keep[torch.randperm(rows, generator=g)[:changed_rows]] = 1.0
        delta = delta * keep
    after = before + delta
    sample = P.update_sample(before.numel(), 7)
    k = sample.numel()
    assert k == max(P.UPDATE_SAMPLE_MIN, before.numel() // P.UPDATE_SAMPLE_DIVISOR)
    exact = float(((after.double() - before.double()) ** 2).sum())
    estimate = float(P.update_norm_squared(before, after, sample))
    sd = relative_sd(after - before, k)
    bound = math.sqrt((3 * (1 if changed_rows is None else rows / changed_rows) - 1) / k)
    assert sd == pytest.approx(bound, rel=0.15)
    assert abs(estimate / exact - 1) <= 4 * sd, (estimate, exact, sd)


class Wide(nn.Module):
    """An embedding of 4000 x 64 (a sampled parameter), a Linear 64 x 1200 (sampled) and a small head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.fc, self.head = nn.Embedding(4000, 64), nn.Linear(64, 1200), nn.Linear(1200, 5)

    def forward(self, ids):
        return self.head(torch.relu(self.fc(self.emb(ids).mean(1))))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_probe_update_ratio_is_the_sampled_estimate_and_near_the_full_copy(optimizer):
    """The probe's fused path gives exactly :func:`update_norm_squared` on its fixed sample (each
    parameter's seed: UPDATE_SAMPLE_SEED + its index), and that is near the full copy's ratio; a small
    parameter's ratio is the full copy's."""
    model = Wide()
    make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.5), "adam": lambda p: torch.optim.Adam(p, lr=1e-3)}
    opt = make[optimizer](model.parameters())
    names = [n for n, _ in model.named_parameters()]
    g = torch.Generator().manual_seed(3)
    sampled, exact = {n: [] for n in names}, {n: [] for n in names}
    with watch(model, optimizer=opt) as mon:
        for _ in range(6):                                    # all full steps (the default's warm-up)
            ids, y = torch.randint(0, 4000, (16, 8), generator=g), torch.randint(0, 5, (16,), generator=g)
            opt.zero_grad()
            F.cross_entropy(model(ids), y).backward()
            before = [p.detach().clone() for p in model.parameters()]
            opt.step()
            for i, (n, p, b) in enumerate(zip(names, model.parameters(), before)):
                w = float(b.double().norm())
                sample = P.update_sample(p.numel(), P.UPDATE_SAMPLE_SEED + i)
                sampled[n].append(math.sqrt(float(P.update_norm_squared(b, p, sample))) / w)
                exact[n].append(math.sqrt(float(P.update_norm_squared(b, p, None))) / w)
        copies = mon.params._copy[1]
    stats = mon.stats().params
    for n in names:
        mean_sampled, mean_exact = sum(sampled[n]) / 6, sum(exact[n]) / 6
        assert stats[n].update_to_weight == pytest.approx(mean_sampled, rel=1e-5), n
        assert stats[n].update_to_weight == pytest.approx(mean_exact, rel=0.1 if "emb" in n else 0.02), n
    assert stats["head.weight"].update_to_weight == pytest.approx(sum(exact["head.weight"]) / 6, rel=1e-5)
    # what is kept between the hooks: every parameter of at most 2^16 values, n/64 (at least 2^14) of a larger one
    limit = sum(p.numel() if p.numel() <= P.EXACT_UPDATE_VALUES
                else max(P.UPDATE_SAMPLE_MIN, p.numel() // P.UPDATE_SAMPLE_DIVISOR) for p in model.parameters())
    assert sum(c.numel() for c in copies) == limit < sum(p.numel() for p in model.parameters()) / 2


def test_unsampled_steps_read_no_gradient(monkeypatch):
    """From step 10 to 49 the default schedule samples nothing: no gradient norm is taken."""
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    calls, step = [], [0]
    original = torch._foreach_norm

    def counted(tensors, *args, **kwargs):
        calls.append(step[0])
        return original(tensors, *args, **kwargs)

    monkeypatch.setattr(torch, "_foreach_norm", counted)
    with watch(model, optimizer=opt):
        for step[0] in range(30):
            opt.zero_grad()
            F.cross_entropy(model(torch.randn(8, 8)), torch.randint(0, 2, (8,))).backward()
            opt.step()
        step[0] = "exit"
    assert calls and not [s for s in calls if s not in range(10) and s != "exit"], calls


@pytest.mark.parametrize("loop", ["clear after forward", "clear before forward", "clip_grad_norm_"])
def test_nan_gradient_on_an_unsampled_step_is_still_found(loop, fragile):
    """Step 23 is not sampled. Clearing after the forward, the held gradient is read at the next (non-finite)
    output: its own step and parameter. Clearing before it, the NaN the update wrote into ``a`` is found
    where it first shows, in ``a``'s output one step later. ``clip_grad_norm_``'s total finds it at once."""
    model = fragile()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer=opt) as mon:
        for step in range(30):
            model.poison = step == 23
            if loop == "clear before forward":
                opt.zero_grad()
            out = model(torch.randn(4, 3))
            if loop != "clear before forward":
                opt.zero_grad()
            out.pow(2).mean().backward()
            if loop == "clip_grad_norm_":
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    nf = mon.stats().nonfinite
    expected = {"clear after forward": (23, "gradient", "a.bias"), "clear before forward": (24, "activation", "a"),
                "clip_grad_norm_": (23, "gradient", "clip_grad_norm_")}[loop]
    assert (nf.step, nf.kind, nf.where) == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_row_hashes_in_reused_block_buffers_equal_the_whole_matrix_hash(monkeypatch, dtype):
    """The symmetry hashes, computed block by block in three reused buffers (no temporaries per block), equal
    the brute-force hash of the whole matrix at once, sum_i round(w_ji / s) v_ki mod 2^64, for blocks that
    split the rows unevenly, a transposed (non-contiguous) view, and identical rows hashing alike."""
    from impediments.monitor.probes import symmetry as S

    monkeypatch.setattr(S, "HASH_BLOCK_VALUES", 700)          # 7 rows of 100 a block: 301 rows -> 43 blocks
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(301, 100, generator=g) * 3).to(dtype)
    w[17] = w[250]
    for m in (w, w[:100].T):
        scale = S._abs_max(m).clamp_min(1e-30) * S.RELATIVE_RESOLUTION
        v = S._coefficients(m.shape[1] + 1, "cpu")[:, :m.shape[1]]
        q = torch.round(m / scale).long()
        whole = torch.stack([(q * v[0]).sum(1), (q * v[1]).sum(1)], 1)
        got = S._hash_blocks(m, scale, v)
        assert got.dtype == torch.int64 and torch.equal(got, whole)
    assert torch.equal(S._hash_blocks(w, scale, v)[17], S._hash_blocks(w, scale, v)[250])
    assert S._hash_blocks(w[:0], scale, v).shape == (0, 2)


def test_fingerprint_sums_over_one_reused_buffer_equal_float64(monkeypatch):
    """A parameter's fingerprint norm and sum, converted block by block into one float64 buffer, equal the
    float64 sums of the whole tensor (a last block shorter than the others included)."""
    from impediments.monitor.probes.loop import probe as L

    monkeypatch.setattr(L, "FINGERPRINT_BLOCK", 1000)
    x = torch.randn(10_500, generator=torch.Generator().manual_seed(1)) * 1e3
    squares, total = L._square_sum_and_sum(x)
    assert float(squares) == pytest.approx(float(x.double().pow(2).sum()), rel=1e-14)
    assert float(total) == pytest.approx(float(x.double().sum()), rel=1e-12, abs=1e-9)
    fp = L.fingerprints([x, x.reshape(105, 100), torch.zeros(0)])
    assert fp[0, 0] == fp[1, 0] and float(fp[0, 0]) == pytest.approx(float(x.double().norm()), rel=1e-14)
    assert fp[2].tolist()[:2] == [0.0, 0.0]


def test_output_zero_fraction_is_the_brute_force_mean_over_forwards():
    """The output's zero fraction, counted in int64 (no float64 copy of the logits), equals the mean over the
    sampled forwards of each output's fraction of exact zeros, computed here from the outputs themselves."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 40), nn.ReLU(), nn.Linear(40, 30), nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen = []
    model.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    with watch(model, optimizer=opt, every=1) as mon:
        for _ in range(4):
            opt.zero_grad()
            model(torch.randn(9, 6)).sum().backward()
            opt.step()
    out = mon.stats().output
    fractions = [(y == 0).double().mean().item() for y in seen]
    assert out.forwards == len(seen) == 4 and 0 < min(fractions) < 1
    assert out.zero_fraction == pytest.approx(sum(fractions) / len(fractions), rel=1e-15)


def test_constant_output_forwards_match_brute_force_on_a_transposed_output():
    """A forward's output is constant when every example's is the same: counted over the batch dimension of the
    output itself (a transposed, non-contiguous one included, as a language model's logits are), equal to
    brute force over the flattened examples; a bias-only head (zero weight) is constant at every forward."""
    class Transposed(nn.Module):
        def __init__(self, zero: bool):
            super().__init__()
            self.lin = nn.Linear(6, 5)
            if zero:
                nn.init.zeros_(self.lin.weight)

        def forward(self, x):
            return self.lin(x).transpose(1, 2)                       # (N, 5, T): not contiguous

    for zero in (False, True):
        torch.manual_seed(0)
        model = Transposed(zero)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        seen = []
        model.register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
        with watch(model, optimizer=opt, every=1) as mon:
            for _ in range(3):
                opt.zero_grad()
                F.cross_entropy(model(torch.randn(4, 7, 6)), torch.randint(0, 5, (4, 7))).backward()
                if not zero:
                    opt.step()
        brute = sum(bool((y.reshape(len(y), -1) == y.reshape(len(y), -1)[0]).all()) for y in seen)
        assert mon.stats().output.constant_forwards == brute == (3 if zero else 0)
