"""The output head, the loss and the targets (issue 24 item 3): statistics against brute force, rules on
small real runs (each broken head against its fixed twin), and the loss at initialization against closed form."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import impediments as imp
from impediments.doctor import diagnose
from impediments.monitor import Monitor
from impediments.monitor.probes.loop.loss_calls import producer


def train(model, loss_fn, X, y, steps=12, lr=1e-2):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with Monitor(model, optimizer=opt, every=1) as mon:
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(model(X), y).backward()
            opt.step()
    return mon.stats()


def codes(stats, severities=("warning", "error")):
    return {(f.code, f.evidence.get("mismatch")) for f in diagnose(stats).findings if f.severity in severities}


@pytest.fixture(scope="module")
def X():
    return torch.randn(64, 5, generator=torch.Generator().manual_seed(1))


def test_producer_walks_through_view_ops():
    z = torch.randn(8, 1, requires_grad=True)
    assert producer(torch.sigmoid(z).squeeze(1)) == "SigmoidBackward0"
    assert producer(torch.softmax(z.view(2, 4), 1).reshape(-1).unsqueeze(0).t()) == "SoftmaxBackward0"
    assert producer(torch.relu(z).flatten()[2:]) == "ReluBackward0"
    assert producer((z * 2).view(-1)) == "MulBackward0"
    assert producer(z.view(-1)) == "ViewBackward0"          # a view of a leaf: nothing behind it
    assert producer(torch.randn(3)) == "leaf"


def test_loss_call_statistics_equal_brute_force(X):
    y = 30 + 20 * torch.randn(64, 1, generator=torch.Generator().manual_seed(2))
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), nn.MSELoss(), X, y, steps=3)
    call = st.loop.losses["mse_loss"]
    assert call.calls == 3 and call.input_from == {"SigmoidBackward0": 3} and call.width == 1
    assert call.target_values == 3 * 64
    assert call.target_mean == pytest.approx(float(y.double().mean()), rel=1e-9)
    assert call.target_var == pytest.approx(float(y.double().var(unbiased=False)), rel=1e-9)
    assert (call.target_min, call.target_max) == (pytest.approx(float(y.min())), pytest.approx(float(y.max())))
    assert call.output_range == [0.0, 1.0]
    assert call.targets_outside_range == pytest.approx(float(((y < 0) | (y > 1)).double().mean()))
    # the uninformed loss is what a zero output scores: mean(y^2)
    assert call.first_loss_step == 0
    assert call.uninformed_loss == pytest.approx(float((y.double() ** 2).mean()), rel=1e-6)


def test_class_targets_rows_and_constant_inputs_brute_force(X):
    t = torch.tensor([0, 1, 1, 0] * 16, dtype=torch.float32)
    multi = torch.stack([t, 1 - t, t, torch.ones(64)], 1)               # rows with 2 or 3 ones
    multi[:8] = F.one_hot(torch.arange(8) % 4, 4).float()               # 8 one-hot rows
    st = train(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(), X, multi, steps=2)
    call = st.loop.losses["cross_entropy"]
    ones = (multi == 1).sum(1)
    assert call.target_rows == 128 and call.onehot_rows == 2 * int((ones == 1).sum())
    assert call.multihot_rows == 2 * int((ones >= 2).sum())
    labels = torch.arange(64) % 4
    labels[5] = -1                                                       # ignore_index
    st = train(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(ignore_index=-1), X, labels, steps=2)
    call = st.loop.losses["cross_entropy"]
    assert (call.class_targets, call.classes_out_of_range, call.class_min, call.class_max) == (128, 0, 0, 3)
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Softmax(1)), lambda o, t: F.mse_loss(o.squeeze(1), t), X,
               torch.rand(64), steps=3)
    assert st.loop.losses["mse_loss"].constant_inputs == 3
    assert (st.output.constant_forwards, st.output.width, st.output.produced_by) == (3, 1, {"SoftmaxBackward0": 3})
    assert st.output.min == st.output.max == 1.0


def test_softmax_over_one_unit_under_a_hand_written_loss(X):
    """A Keras-style BCE on a softmax over one unit: no loss function is called, the output probe sees it."""
    y = (X[:, 0] > 0).float().unsqueeze(1)

    def keras_bce(p, t):
        p = p.clamp(1e-7, 1 - 1e-7)
        return -(t * p.log() + (1 - t) * (1 - p).log()).mean()

    broken = train(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1), nn.Softmax(dim=1)), keras_bce, X, y)
    fixed = train(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid()), keras_bce, X, y)
    assert ("output_head_mismatch", "softmax_over_one_unit") in codes(broken)
    assert not any(c == "output_head_mismatch" for c, _ in codes(fixed, ("info", "warning", "error")))


@pytest.mark.parametrize("case", ["bounded_regression", "binary_on_labels", "multilabel_softmax", "relu_logits"])
def test_head_mismatches_and_their_fixes(X, case):
    g = torch.Generator().manual_seed(3)
    if case == "bounded_regression":        # sigmoid output for standardized (signed) targets
        y = X[:, :1] * 2 + 0.1 * torch.randn(64, 1, generator=g)
        broken = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), nn.MSELoss(), X, y)
        fixed = train(nn.Sequential(nn.Linear(5, 1)), nn.MSELoss(), X, y)
        expected = "targets_outside_output_range"
    elif case == "binary_on_labels":        # four classes into one probability (BCE with logits accepts any target)
        y = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0).long()
        broken = train(nn.Sequential(nn.Linear(5, 1)), lambda o, t: F.binary_cross_entropy_with_logits(
            o.squeeze(1), t.float()), X, y)
        fixed = train(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(), X, y)
        expected = "binary_loss_on_non_binary_targets"
    elif case == "multilabel_softmax":
        y = torch.stack([(X[:, k] > 0).float() for k in range(4)], 1)
        broken = train(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(), X, y)
        fixed = train(nn.Sequential(nn.Linear(5, 4)), nn.BCEWithLogitsLoss(), X, y)
        expected = "softmax_on_multilabel_targets"
    else:
        y = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0).long()
        broken = train(nn.Sequential(nn.Linear(5, 4), nn.ReLU()), nn.CrossEntropyLoss(), X, y)
        fixed = train(nn.Sequential(nn.Linear(5, 4)), nn.CrossEntropyLoss(), X, y)
        expected = "relu_on_logits"
    assert ("output_head_mismatch", expected) in codes(broken)
    assert not codes(fixed), codes(fixed)


def test_info_variants_are_info(X):
    labels = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0).long()
    onehot = F.one_hot(labels, 4).float()
    st = train(nn.Sequential(nn.Linear(5, 4)), nn.BCEWithLogitsLoss(), X, onehot)
    assert ("output_head_mismatch", "independent_sigmoids_on_exclusive_classes") in codes(st, ("info",))
    st = train(nn.Sequential(nn.Linear(5, 4), nn.Softmax(1)), nn.MSELoss(), X, onehot)
    assert ("output_head_mismatch", "classification_with_regression_loss") in codes(st, ("info",))
    assert not codes(st)


def test_unscaled_targets_and_standardized_twin(X):
    y = 500 + 80 * X[:, :1]
    broken = train(nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1)), nn.MSELoss(), X, y)
    fixed = train(nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 1)), nn.MSELoss(), X,
                  (y - y.mean()) / y.std())
    found = [f for f in diagnose(broken).findings if f.code == "unscaled_targets"]
    assert found and found[0].evidence["target_rms"] == pytest.approx(float(y.double().pow(2).mean().sqrt()))
    assert found[0].evidence["adam_steps_to_mean"] == pytest.approx(float(y.mean()) / 1e-2, rel=1e-6)
    assert not codes(fixed)


def test_initial_loss_against_closed_form():
    """Logits of spread s over C classes: E[CE] = E[logsumexp z - z_y]; the uninformed loss is exactly ln C."""
    C, n, s = 10, 4096, 6.0
    g = torch.Generator().manual_seed(4)
    X = torch.randn(n, 32, generator=g)
    y = torch.randint(0, C, (n,), generator=g)
    model = nn.Linear(32, C, bias=False)
    with torch.no_grad():
        model.weight.normal_(0, s / math.sqrt(32), generator=g)
    with torch.no_grad():
        expected = float(F.cross_entropy(model(X), y))
    report = imp.checkup(model, X, y)
    call = report.stats.loop.losses["cross_entropy"]
    assert call.first_loss == pytest.approx(expected, rel=1e-5)
    assert call.uninformed_loss == pytest.approx(math.log(C), rel=1e-6)
    found = [f for f in report.findings if f.code == "initial_loss_high"]
    assert found and found[0].severity == "warning" and found[0].evidence["excess"] > 2
    with torch.no_grad():
        model.weight.normal_(0, 0.5 / math.sqrt(32), generator=g)      # spread 0.5: about ln C + 0.12
    assert not [f for f in imp.checkup(model, X, y).findings if f.code == "initial_loss_high"]


def test_initial_loss_with_summed_reduction_and_label_smoothing():
    """The uninformed loss is the same call on a uniform prediction, so reduction and smoothing cancel."""
    g = torch.Generator().manual_seed(5)
    X, y = torch.randn(256, 8, generator=g), torch.randint(0, 5, (256,), generator=g)
    model = nn.Linear(8, 5)
    report = imp.checkup(model, X, y, nn.CrossEntropyLoss(reduction="sum", label_smoothing=0.1))
    call = report.stats.loop.losses["cross_entropy"]
    assert call.uninformed_loss == pytest.approx(math.log(5), rel=1e-6)
    with torch.no_grad():
        expected = float(F.cross_entropy(model(X), y, label_smoothing=0.1))
    assert call.first_loss == pytest.approx(expected, rel=1e-5)
    assert not [f for f in report.findings if f.code == "initial_loss_high"]


@pytest.mark.parametrize("example,code", [
    ("head_softmax_one_unit", "output_head_mismatch"),
    ("head_hand_written_targets", "output_head_mismatch"),
    ("head_unscaled_targets", "unscaled_targets"),
    ("head_initial_loss_high", "initial_loss_high"),
    ("head_dropout_on_output", "dropout_on_output"),
    ("head_uninformative_labels", "uninformative_labels"),
])
def test_examples_broken_and_fixed(tmp_path, capsys, example, code):
    """``impediments doctor`` on each broken example names its code (exit 1); its fixed twin is quiet (exit 0)."""
    import json
    from pathlib import Path

    from impediments.cli import main
    examples = Path(__file__).resolve().parents[1] / "examples"
    js = tmp_path / "r.json"
    assert main(["doctor", str(examples / f"{example}.py"), "--json", str(js)]) == 1
    assert code in json.loads(js.read_text())["summary"]["codes"]
    assert main(["doctor", str(examples / f"{example}_fixed.py"), "--json", str(js)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("example,remedy", [("head_softmax_one_unit", "matched_output_activation"),
                                            ("head_hand_written_targets", "matched_output_activation"),
                                            ("head_unscaled_targets", "destandardized_output")])
def test_fix_verifies_the_mechanical_remedy(tmp_path, capsys, example, remedy):
    """``impediments fix`` on the broken example: the head remedy is a verified fix of its code."""
    import json
    from pathlib import Path

    from impediments.cli import main
    spec = Path(__file__).resolve().parents[1] / "examples" / f"{example}.py"
    js = tmp_path / "fix.json"
    main(["fix", str(spec), "--steps", "60", "--seeds", "1", "--jobs", "1", "--json", str(js)])
    capsys.readouterr()
    doc = json.loads(js.read_text())
    row = next(r for r in doc["rows"] if r["name"] == remedy)
    assert row["status"] == "verified fix", row["status"]
    assert set(row["verdict"]["targets"]) <= set(row["verdict"]["verified"])


def test_nll_loss_on_logits_and_on_log_probabilities(X):
    y = (X[:, 0] > 0).long() + 2 * (X[:, 1] > 0).long()
    broken = train(nn.Sequential(nn.Linear(5, 4)), nn.NLLLoss(), X, y)
    assert broken.loop.losses["nll_loss"].input_max > 0
    assert ("output_head_mismatch", "nll_loss_on_logits") in codes(broken)
    fixed = train(nn.Sequential(nn.Linear(5, 4), nn.LogSoftmax(dim=1)), nn.NLLLoss(), X, y)
    assert fixed.loop.losses["nll_loss"].input_max <= 0 and not codes(fixed)


def test_a_loss_identical_at_every_step_is_a_degenerate_head():
    """Categorical cross-entropy on one unit: -y log_softmax(z) over a dimension of size 1 is 0 for every input."""
    g = torch.Generator().manual_seed(6)
    X, y = torch.randn(640, 5, generator=g), (torch.rand(640, generator=g) > 0.5).float()
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with Monitor(model, optimizer=opt, every=1) as mon:
        for step in range(60):
            xb, yb = X[step % 10 * 64:(step % 10 + 1) * 64], y[step % 10 * 64:(step % 10 + 1) * 64]
            opt.zero_grad()
            loss = -(yb.unsqueeze(1) * torch.log_softmax(model(xb), dim=1)).sum(1).mean()
            loss.backward()
            mon.record_loss(loss)
            opt.step()
    assert ("output_head_mismatch", "constant_loss") in codes(mon.stats())


def test_dropout_on_output_measured_zero_fraction(X):
    y = (X[:, 0] > 0).long()
    st = train(nn.Sequential(nn.Linear(5, 2), nn.Dropout(0.3)), nn.CrossEntropyLoss(), X, y, steps=20)
    assert st.output.last_module == "Dropout" and st.output.last_dropout_p == 0.3
    assert abs(st.output.zero_fraction - 0.3) < 0.1
    assert ("dropout_on_output", None) in codes(st)
    st = train(nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.3), nn.Linear(8, 2)), nn.CrossEntropyLoss(), X, y,
               steps=20)
    assert st.output.zero_fraction == 0 and not codes(st)


def test_findings_carry_evidence_and_their_example_exists(X):
    """Every new code's finding says how much it saw and how sure, and its 'see:' names a shipped example."""
    from pathlib import Path

    from impediments.doctor import CODES
    root = Path(__file__).resolve().parents[1]
    y = 300 + 80 * X[:, :1]
    found = diagnose(train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), nn.MSELoss(), X, y)).findings
    found += diagnose(train(nn.Sequential(nn.Linear(5, 2), nn.Dropout(0.5)), nn.CrossEntropyLoss(), X,
                            (X[:, 0] > 0).long())).findings
    model = nn.Linear(5, 10)
    with torch.no_grad():
        model.weight.mul_(40)
    found += imp.checkup(model, X, torch.arange(64) % 10).findings
    codes_seen = {f.code for f in found}
    assert {"output_head_mismatch", "unscaled_targets", "dropout_on_output", "initial_loss_high"} <= codes_seen
    for f in found:
        if f.code in ("output_head_mismatch", "unscaled_targets", "dropout_on_output", "initial_loss_high"):
            assert f.explanation and f.remedy and f.where and f.evidence["seen"] and f.evidence["confidence"]
            assert f"see: impediments doctor {CODES[f.code].experiment}" in f.remedy
            assert (root / CODES[f.code].experiment).is_file()


def test_uninformative_labels_measures_the_prior_entropy():
    """Shuffled labels with a 70/20/10 prior: the loss settles at H = -sum p ln p (not ln 3); paired labels do not."""
    g = torch.Generator().manual_seed(7)
    X = torch.randn(20000, 6, generator=g)
    y = torch.full((20000,), 0)
    y[X[:, 0] > 0.52] = 1
    y[X[:, 0] > 1.28] = 2                                   # about 70% / 20% / 10%
    counts = torch.bincount(y, minlength=3).double()
    prior = counts / counts.sum()
    entropy = float(-(prior * prior.log()).sum())
    found = {}
    for shuffled in (True, False):
        labels = y[torch.randperm(20000, generator=g)] if shuffled else y
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        with Monitor(model, optimizer=opt) as mon:
            for step in range(80):
                i = torch.randint(0, 20000, (100,), generator=g)
                opt.zero_grad()
                loss = F.cross_entropy(model(X[i]), labels[i])
                loss.backward()
                mon.record_loss(loss)
                opt.step()
        found[shuffled] = [f for f in diagnose(mon.stats()).findings if f.code == "uninformative_labels"]
    assert found[True] and found[True][0].evidence["label_entropy"] == pytest.approx(entropy, rel=0.05)
    assert entropy < math.log(3) - 0.2
    assert not found[False]


def test_initial_loss_of_a_loss_the_model_computes_itself():
    """A Hugging Face model given labels computes its loss inside forward: read from its output against ln V."""
    from transformers import GPT2Config, GPT2LMHeadModel

    ids = torch.randint(0, 100, (4, 16), generator=torch.Generator().manual_seed(8))
    found = {}
    for std in (0.02, 1.0):
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=2,
                                           initializer_range=std, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
        with torch.no_grad():
            expected = float(model(input_ids=ids, labels=ids).loss)
        report = imp.checkup(model, {"input_ids": ids, "labels": ids}, loss_fn=lambda out: out.loss)
        assert report.stats.output.model_loss_first == pytest.approx(expected, rel=1e-5)
        assert (report.stats.output.model_loss_classes, report.stats.output.model_loss_step) == (100, 0)
        found[std] = [f for f in report.findings if f.code == "initial_loss_high"]
    assert not found[0.02]
    assert found[1.0] and found[1.0][0].evidence["excess"] > 2


def _keras_bce(out, t):
    p = out.reshape(t.shape).clamp(1e-7, 1 - 1e-7)
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


def test_hand_written_loss_targets_equal_brute_force(X):
    """A loss written by hand calls no loss function: its targets are read from the first arithmetic op that
    combines the graph with a float tensor of the output's batch size (the Keras-style BCE's ``t * p.log()``)."""
    y = 2 * torch.rand(64, generator=torch.Generator().manual_seed(3)) - 1          # in [-1, 1]
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), _keras_bce, X, y, steps=3)
    call = st.loop.losses["hand_written"]
    assert call.calls == 3 and call.input_from == {"SigmoidBackward0": 3} and call.width == 1
    assert call.target_values == 3 * 64 and call.output_range == [0.0, 1.0]
    assert call.target_mean == pytest.approx(float(y.double().mean()), rel=1e-9)
    assert call.target_var == pytest.approx(float(y.double().var(unbiased=False)), rel=1e-9)
    assert call.targets_outside_range == pytest.approx(float((y < 0).double().mean()))
    assert ("output_head_mismatch", "targets_outside_output_range") in codes(st)
    # the fixed twin: the same loss on targets in [0, 1] is quiet
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), _keras_bce, X, (y > 0).float(), steps=3)
    assert st.loop.losses["hand_written"].targets_outside_range == 0.0
    assert not {c for c, _ in codes(st)} & {"output_head_mismatch"}


def test_hand_written_loss_only_when_no_loss_function_is_called(X):
    """A library loss plus a hand-written term (a penalty on the output, the targets times a constant) is the
    library loss's call; a broadcast target (N, 1) against (N, 10) is read, one that would enlarge the graph
    tensor is not."""
    y = torch.rand(64, 1)
    both = lambda out, t: F.mse_loss(out, t) + 0.1 * (out * torch.ones_like(t)).mean()
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), both, X, y, steps=2)
    assert set(st.loop.losses) == {"mse_loss"}
    first_hand = lambda out, t: (out * torch.ones_like(t)).mean() + F.mse_loss(out, t)
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), first_hand, X, y, steps=2)
    assert set(st.loop.losses) == {"mse_loss"}                      # the call later in the window wins
    square = lambda out, t: ((out - 5 * t) ** 2).mean()             # (N, 10) - (N, 1): Keras-style broadcast
    st = train(nn.Sequential(nn.Linear(5, 10), nn.Softmax(1)), square, X, y, steps=2)
    call = st.loop.losses["hand_written"]
    assert call.target_values == 2 * 64 and call.target_max == pytest.approx(float(5 * y.max()))
    assert ("output_head_mismatch", "targets_outside_output_range") in codes(st)
    wide = lambda out, t: ((out.reshape(-1, 1) - t.reshape(1, -1)) ** 2).mean()     # every pair: no candidate
    st = train(nn.Sequential(nn.Linear(5, 1), nn.Sigmoid()), wide, X, 5 * y, steps=2)
    assert "hand_written" not in st.loop.losses


def test_initial_loss_high_under_watch_is_graded_by_its_cost():
    """Under watch() a high start is a warning while the loss is still above the uniform prediction's ln C over the
    last third of the windows, and info once the run came down to ln C and stayed there (the excess was shed)."""
    C, s = 10, 6.0
    g = torch.Generator().manual_seed(6)
    X = torch.randn(512, 32, generator=g)
    y = (X @ torch.randn(32, C, generator=g)).argmax(1)         # a learnable labelling
    found, last_third = {}, {}
    for lr in (5e-2, 1e-5):
        model = nn.Linear(32, C, bias=False)
        with torch.no_grad():
            model.weight.normal_(0, s / math.sqrt(32), generator=g)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        with imp.watch(model, optimizer=opt) as mon:
            for _ in range(60):
                loss = F.cross_entropy(model(X), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                mon.record_loss(loss)
                losses.append(float(loss.detach()))
        stats = mon.stats()
        found[lr] = [f for f in diagnose(stats).findings if f.code == "initial_loss_high"]
        means = [w.loss_mean for w in stats.windows if w.loss_mean is not None]
        k = max(1, len(means) // 3)
        last_third[lr] = sum(means[-k:]) / k
        assert losses[0] - math.log(C) > 2                       # the same high start in both runs
    fast, slow = found[5e-2][0], found[1e-5][0]
    assert last_third[5e-2] < math.log(C) < last_third[1e-5]
    assert fast.severity == "info" and fast.evidence["last_third_loss"] == pytest.approx(last_third[5e-2])
    assert fast.evidence["down_to_uninformed_by_step"] is not None
    assert slow.severity == "warning" and slow.evidence["down_to_uninformed_by_step"] is None
