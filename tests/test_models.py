import pytest
import torch
from torch import nn

from impediments.models import ACTIVATION_MODULES, ResidualBlock, cnn1d, cnn2d, mlp


def test_mlp_layer_names_and_shapes():
    m = mlp(64, 10, width=32, depth=3, norm="batch", dropout=0.1)
    names = dict(m.named_modules())
    for k in (1, 2, 3):
        assert isinstance(names[f"hidden{k}.linear"], nn.Linear)
        assert isinstance(names[f"hidden{k}.norm"], nn.BatchNorm1d)
        assert isinstance(names[f"hidden{k}.act"], nn.ReLU)
        assert isinstance(names[f"hidden{k}.dropout"], nn.Dropout)
    assert names["hidden1.linear"].in_features == 64 and names["output"].out_features == 10
    assert m(torch.randn(5, 64)).shape == (5, 10)


@pytest.mark.parametrize("position,order", [("pre", ["linear", "norm", "act"]), ("post", ["linear", "act", "norm"])])
def test_norm_position(position, order):
    m = mlp(4, 2, width=8, depth=1, norm="layer", norm_position=position)
    assert list(dict(m.hidden1.named_children())) == order


def test_mlp_is_the_composition_it_claims():
    torch.manual_seed(0)
    m = mlp(6, 3, width=5, depth=2, activation="tanh")
    x = torch.randn(4, 6)
    h = torch.tanh(m.hidden1.linear(x))
    h = torch.tanh(m.hidden2.linear(h))
    torch.testing.assert_close(m(x), m.output(h))


def test_residual_mlp_blocks():
    torch.manual_seed(0)
    m = mlp(6, 3, width=5, depth=4, residual=True)
    blocks = [mod for mod in m.modules() if isinstance(mod, ResidualBlock)]
    assert len(blocks) == 4
    x = torch.randn(2, 5)
    b = blocks[0]
    torch.testing.assert_close(b(x), x + b.branch.linear2(torch.relu(b.branch.linear1(torch.relu(x)))))


@pytest.mark.parametrize("norm", [None, "batch", "layer", "group"])
def test_every_norm_runs_in_every_model(norm):
    x = torch.randn(4, 40)
    assert mlp(40, 10, width=16, depth=2, norm=norm)(x).shape == (4, 10)
    assert cnn1d(norm=norm)(x).shape == (4, 10)
    assert cnn2d((1, 8, 8), width=8, depth=2, norm=norm)(torch.randn(4, 64)).shape == (4, 10)


def test_cnn1d_default_is_mnist1d_reference():
    m = cnn1d()
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv1d)]
    assert len(convs) == 3 and all(c.out_channels == 25 for c in convs)
    assert m.output.in_features == 125 and m.output.out_features == 10


@pytest.mark.parametrize("name", list(ACTIVATION_MODULES))
def test_activation_lookup(name):
    m = mlp(3, 2, width=4, depth=1, activation=name)
    assert type(m.hidden1.act) is type(ACTIVATION_MODULES[name]())


@pytest.mark.parametrize(
    "kwargs,match",
    [({"depth": 0}, "depth"), ({"width": 0}, "width"), ({"activation": "swish2"}, "swish2.*relu"),
     ({"norm": "batchnorm"}, "batchnorm.*batch"), ({"norm_position": "mid"}, "mid"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_model_arguments(kwargs, match):
    base = {"width": 4, "depth": 1}
    with pytest.raises(ValueError, match=match):
        mlp(3, 2, **{**base, **kwargs})


def test_cnn_too_deep_and_wrong_input():
    with pytest.raises(ValueError, match="in_shape"):
        cnn1d(in_shape=(40,))
    with pytest.raises(ValueError, match=r"\(N, 1, 40\)"):
        cnn1d()(torch.randn(2, 39))
