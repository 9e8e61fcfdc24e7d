"""freeze / unfreeze / frozen_state: Keras trainable=False semantics for ours and torch's BatchNorm."""
import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from impediments import norm
from impediments.models import cnn1d, mlp


def small_net(bn: str = "torch") -> nn.Sequential:
    make = {"torch": lambda c: nn.BatchNorm1d(c), "ours": lambda c: norm.BatchNorm(c)}[bn]
    return nn.Sequential(nn.Linear(6, 8), make(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 8), make(8), nn.ReLU(),
                         nn.Linear(8, 3))


def bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


def train_steps(model: nn.Module, steps: int = 100, lr: float = 0.1) -> None:
    # every parameter goes to the optimizer, frozen or not, with momentum and weight decay, as a careless
    # training script would do: frozen parameters must still not move
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-3)
    for _ in range(steps):
        model.train()
        x = torch.randn(16, 6) * 2 + 1
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 3, (16,)))
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("bn", ["torch", "ours"])
def test_frozen_model_keeps_running_stats_bit_for_bit_through_100_steps(bn):
    model = small_net(bn)
    train_steps(model, steps=3)  # non-trivial statistics to start from
    norm.freeze(model[:2])       # freeze the "base": first Linear + BN
    before = bn_buffers(model)
    w_before = model[0].weight.detach().clone()
    train_steps(model, steps=100)  # calls model.train() every step
    after = bn_buffers(model)
    for key in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert torch.equal(before[key], after[key]), key
    assert torch.equal(model[0].weight, w_before)
    assert not torch.equal(before["5.running_mean"], after["5.running_mean"])  # the head still trains
    assert model[1].training is False and model[5].training is True


@pytest.mark.parametrize("bn", ["torch", "ours"])
def test_naive_freeze_with_requires_grad_false_still_changes_running_stats(bn):
    model = small_net(bn)
    for p in model[:2].parameters():
        p.requires_grad_(False)
    model[1].eval()  # ... and model.train() undoes this
    before = bn_buffers(model)
    train_steps(model, steps=100)
    after = bn_buffers(model)
    assert not torch.equal(before["1.running_mean"], after["1.running_mean"])
    assert int(after["1.num_batches_tracked"]) == 100


@pytest.mark.parametrize("bn", ["torch", "ours"])
def test_frozen_bn_uses_running_statistics_after_train(bn):
    model = small_net(bn)
    train_steps(model, steps=5)
    norm.freeze(model).train()
    x = torch.randn(10, 6)
    model.eval()
    expected = model(x)
    model.train()
    model[3].p = 0.0  # dropout is not frozen; switch it off to compare
    assert_close(model(x), expected)
    model[1].training = True  # even a direct flag flip cannot make it use batch statistics
    assert_close(model(x), expected)
    assert model[1].training is False


@pytest.mark.parametrize("bn", ["torch", "ours"])
def test_unfreeze_restores_exactly(bn):
    model = small_net(bn)
    model[4].weight.requires_grad_(False)  # a user choice that must survive freeze/unfreeze
    model.train()
    model[5].eval()  # a user choice, too
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    modes = {n: m.training for n, m in model.named_modules()}
    hooks = {n: dict(m._forward_pre_hooks) for n, m in model.named_modules()}
    norm.freeze(model)
    assert all(not p.requires_grad for p in model.parameters())
    assert norm.is_frozen(model[1]) and norm.is_frozen(model[5])
    model.train()
    norm.unfreeze(model)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == modes
    assert {n: dict(m._forward_pre_hooks) for n, m in model.named_modules()} == hooks
    assert not norm.is_frozen(model[1]) and "train" not in vars(model[1])
    model.train()
    assert model[1].training and model[5].training  # plain torch behaviour again
    before = bn_buffers(model)
    train_steps(model, steps=1)
    assert not torch.equal(before["1.running_mean"], bn_buffers(model)["1.running_mean"])


def test_freeze_records_live_on_the_frozen_object():
    model = small_net()
    model._base = model[:2]
    norm.freeze(model._base)
    with pytest.raises(ValueError, match="was not frozen"):
        norm.unfreeze(model)
    norm.unfreeze(model._base)
    assert not norm.is_frozen(model[1])


def test_nested_freezes_with_a_kept_handle():
    model = small_net()
    model._base = model[:2]
    norm.freeze(model._base)
    norm.freeze(model)
    norm.unfreeze(model)
    assert norm.is_frozen(model[1]) and not norm.is_frozen(model[5])
    norm.unfreeze(model._base)
    assert not norm.is_frozen(model[1]) and model[0].weight.requires_grad


def test_freeze_clears_stale_gradients_so_optimizers_skip_the_parameters():
    model = small_net()
    model(torch.randn(4, 6)).sum().backward()
    norm.freeze(model)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("bn", ["torch", "ours"])
def test_frozen_model_survives_deepcopy_and_pickling(bn):
    model = small_net(bn)
    train_steps(model, steps=2)
    norm.freeze(model)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)), _torch_roundtrip(model)):
        clone.train()
        assert norm.is_frozen(clone[1]) and clone[1].training is False
        before = bn_buffers(clone)
        clone(torch.randn(8, 6))
        assert all(torch.equal(v, bn_buffers(clone)[k]) for k, v in before.items())
        norm.unfreeze(clone)  # the copy unfreezes itself, not the original
        assert not norm.is_frozen(clone[1]) and norm.is_frozen(model[1])


def _torch_roundtrip(model):
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_frozen_state_reports_each_norm_layer():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), norm.BatchNorm(4), nn.LayerNorm(4), norm.GroupNorm(2, 4),
                          nn.Unflatten(1, (4, 1)), nn.InstanceNorm1d(4), norm.InstanceNorm(4),
                          nn.BatchNorm1d(4, track_running_stats=False))
    model.train()
    states = norm.frozen_state(model)
    assert list(states) == ["1", "2", "3", "4", "6", "7", "8"]
    assert [s.kind for s in states.values()] == ["batch", "batch", "layer", "group", "instance", "instance", "batch"]
    assert states["1"].statistics == "batch" and states["1"].updates_running_stats and states["1"].trainable
    assert states["3"].statistics == "per-example" and not states["3"].updates_running_stats
    assert not states["6"].trainable  # InstanceNorm1d has no parameters by default
    norm.freeze(model[:3])
    model.train()
    states = norm.frozen_state(model)
    for name in ("1", "2"):
        s = states[name]
        assert (s.frozen, s.training, s.trainable, s.statistics, s.updates_running_stats) == (
            True, False, False, "running", False)
    assert states["3"].trainable and not states["3"].frozen
    assert states["8"].statistics == "batch"  # no running statistics: always batch statistics
    model.eval()
    assert norm.frozen_state(model)["8"].statistics == "batch"
    assert "frozen" in str(states["1"]) and "running statistics" in str(states["1"])


def test_frozen_state_on_library_models():
    model = cnn1d(norm="batch")
    norm.freeze(model.conv1)
    states = norm.frozen_state(model.train())
    assert states["conv1.norm"].frozen and not states["conv2.norm"].frozen
    assert states["conv2.norm"].statistics == "batch"
    assert norm.frozen_state(mlp(4, 2, width=3, depth=2, norm="layer"))["hidden1.norm"].kind == "layer"


def test_is_batch_norm():
    assert norm.is_batch_norm(norm.BatchNorm(3))
    for m in (nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.BatchNorm3d(3), nn.SyncBatchNorm(3), nn.LazyBatchNorm1d()):
        assert norm.is_batch_norm(m)
    for m in (nn.LayerNorm(3), nn.GroupNorm(1, 3), nn.InstanceNorm1d(3), norm.GroupNorm(1, 3), nn.Linear(2, 2), 3):
        assert not norm.is_batch_norm(m)
    assert not norm.is_frozen(nn.BatchNorm1d(3)) and not norm.is_frozen("bn")


def test_sync_batchnorm_can_be_frozen():
    model = nn.Sequential(nn.Linear(3, 3), nn.SyncBatchNorm(3))
    norm.freeze(model).train()
    before = bn_buffers(model)
    model(torch.randn(5, 3))  # inference mode: SyncBatchNorm needs no process group
    assert all(torch.equal(v, bn_buffers(model)[k]) for k, v in before.items())


@pytest.mark.parametrize("fn", [norm.freeze, norm.unfreeze, norm.frozen_state])
@pytest.mark.parametrize("bad", [None, torch.zeros(3), [nn.Linear(2, 2)], "model"])
def test_freeze_rejects_non_modules(fn, bad):
    with pytest.raises(TypeError, match="expects a torch.nn.Module"):
        fn(bad)


def test_unfreeze_of_a_module_never_frozen_raises():
    with pytest.raises(ValueError, match="was not frozen with impediments.norm.freeze"):
        norm.unfreeze(small_net())
