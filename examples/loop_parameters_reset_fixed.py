"""Fixed twin of loop_parameters_reset.py: initialized once (in model()), never inside the loop.

    impediments doctor examples/loop_parameters_reset_fixed.py    # exit 0
"""
import impediments as imp

STEPS = 60


def model():
    net = imp.mlp(64, 10, width=64, depth=3, activation="relu")
    imp.init.initialize(net, "he_normal", bias=0.0, seed=0)
    return net


def data():
    return "digits"


def train_step(model, optimizer, loss_fn, xb, yb, step):
    optimizer.zero_grad(set_to_none=True)      # FIX: no re-initialization here
    loss = loss_fn(model(xb), yb)
    loss.backward()
    optimizer.step()
    return loss
