"""A sample of the transformers sweep (benchmarks/calibration/hf_sweep.py): ten model types built from tiny
configs (nothing downloaded), including an encoder-decoder (BART), mixtures of experts (Mixtral, Qwen2-MoE),
post-LN encoders (BERT, DistilBERT) and vision models (ViT, Swin), through the sweep's own run code.

Checked against closed forms: a freshly built model scores the uninformed loss ``ln(vocab)`` (``ln(classes)``
for a classifier); at init std 1.0 every Linear multiplies the variance of its input by ``fan_in * 1.0``
and the initial loss sits far above the uninformed one. Then the doctor's verdicts (issue 25): the loss falls
on every healthy model with the checkup and ``watch()`` both quiet (0 false alarms); std 1.0 is named at the
checkup, first, as ``init_scale_too_large`` with the measured gain (GPT-2's projections are transformers'
``Conv1D``, a Linear with its weight stored transposed, read with fan-in ``nx``); lr 1.0 is named under
``watch()``; and ``transformers.Trainer`` with the
``impediments.integrations.huggingface.Doctor`` callback gives the same verdicts on three types.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def calibration_module(name: str):
    """``calibration.<name>`` from benchmarks/calibration/ (benchmarks/ is not on ``sys.path``)."""
    if "calibration" not in sys.modules:
        init = BENCHMARKS / "calibration" / "__init__.py"
        spec = importlib.util.spec_from_file_location("calibration", init,
                                                      submodule_search_locations=[str(init.parent)])
        package = importlib.util.module_from_spec(spec)
        sys.modules["calibration"] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"calibration.{name}")


hf_models, hf_sweep = calibration_module("hf_models"), calibration_module("hf_sweep")
HELD_OUT = calibration_module("hf_heldout").HELD_OUT

# type -> the head the sweep trains it with (its first head in hf_models.HEADS order)
SAMPLE = {
    "gpt2": "causal_lm", "llama": "causal_lm", "gpt_neox": "causal_lm", "opt": "causal_lm",
    "mixtral": "causal_lm", "qwen2_moe": "causal_lm", "bert": "masked_lm", "distilbert": "masked_lm",
    "bart": "seq2seq_lm", "vit": "image_cls", "swin": "image_cls",
}
STEPS = 12


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec_of(model_type: str) -> hf_models.Spec:
    (spec,) = hf_models.specs(types=[model_type])
    return spec


def test_sample_is_not_held_out_and_covers_the_kinds_the_issue_names():
    assert not set(SAMPLE) & HELD_OUT
    assert {"seq2seq_lm", "masked_lm", "causal_lm", "image_cls"} <= set(SAMPLE.values())
    assert len(SAMPLE) >= 10
    assert len(HELD_OUT) == len(hf_models.model_types()) // 5


@pytest.mark.parametrize("model_type", sorted(SAMPLE))
def test_builds_tiny_from_config_and_trains(model_type):
    spec = spec_of(model_type)
    assert spec.head == SAMPLE[model_type]
    model = hf_models.build(spec)
    n_params = sum(p.numel() for p in model.parameters())
    assert 10_000 < n_params <= hf_models.MAX_PARAMS

    row = hf_sweep.run(spec, None, steps=STEPS)
    uninformed = hf_models.uninformed_loss(spec.head)
    assert row["probe"]["loss"] == pytest.approx(uninformed, abs=0.25)      # a fresh model knows nothing
    assert row["steps_run"] == STEPS
    assert row["loss_last"] < row["loss_first"] - 0.05                      # and learns
    assert row["watch"] == []                                               # watch() is quiet on all of them
    assert row["checkup"] == []                                             # and so is the checkup at init


@pytest.mark.parametrize("model_type", sorted(SAMPLE))
def test_init_std_one_is_measurable_at_the_first_forward(model_type):
    spec = spec_of(model_type)
    row = hf_sweep.run(spec, "std1", steps=2)
    assert row["injected"]                                                  # config field or normal_ on weights
    margin = 2.0 if spec.head in hf_models.TOKEN_HEADS else 0.5
    assert row["probe"]["loss"] > hf_models.uninformed_loss(spec.head) + margin
    # every Linear multiplies its input's second moment by fan_in * var(W) (var(W) = 1 here)
    assert 0.5 < row["probe"]["gain_over_fan_in_median"] < 2.0
    assert row["probe"]["linear_gain_median"] > 10.0
    # and the doctor names it at the checkup: the cause first, with the gain it measured itself
    assert row["checkup_alarms"], row
    first = row["checkup_alarms"][0]
    assert first["code"] == "init_scale_too_large" and first["severity"] == "error"
    assert first["evidence"]["median_gain"] == pytest.approx(row["probe"]["linear_gain_median"], rel=0.5)
    assert first["evidence"]["implied_weight_std"] == pytest.approx(1.0, rel=0.25)


def test_linear_gain_probe_matches_the_closed_form_on_one_layer():
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 32, bias=False)
    torch.nn.init.normal_(layer.weight, 0.0, 1.0)

    class OneLayer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = layer

        def forward(self, x, output_hidden_states=False):
            return SimpleNamespace(loss=self.layer(x).pow(2).mean())

    x = torch.randn(4096, 64)
    probe = hf_sweep.init_probe(OneLayer(), {"x": x})
    measured = layer(x).var().item() / x.pow(2).mean().item()
    assert probe["linear_gain_median"] == pytest.approx(measured, rel=1e-4)
    assert measured == pytest.approx(64 * layer.weight.pow(2).mean().item(), rel=0.05)   # fan_in * var(W)
    assert probe["gain_over_fan_in_median"] == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("model_type", ["gpt2", "bert", "bart", "mixtral", "vit"])
def test_learning_rate_one_is_named_under_watch(model_type):
    row = hf_sweep.run(spec_of(model_type), "high_lr", steps=STEPS)
    assert "diverging_loss" in row["watch"] or "exploding_gradients" in row["watch"]
    assert math.isfinite(row["loss_first"])


@pytest.mark.parametrize("model_type", ["bert", "llama", "vit"])
def test_the_trainer_callback_gives_the_same_verdicts(model_type):
    """transformers.Trainer + impediments.integrations.huggingface.Doctor(): quiet when healthy, std 1.0 named as
    the init scale, lr 1.0 named, as the sweep's own loop under watch() does (the tests above)."""
    hf_trainer = calibration_module("hf_trainer")
    spec = spec_of(model_type)
    healthy = hf_trainer.trainer_run(spec, None, steps=STEPS)
    assert healthy["watch"] == [] and healthy["steps_run"] == STEPS
    assert healthy["loss_last"] < healthy["loss_first"]
    std1 = hf_trainer.trainer_run(spec, "std1", steps=4)
    assert std1["watch"][:1] and "init_scale_too_large" in std1["watch"]
    high = hf_trainer.trainer_run(spec, "high_lr", steps=STEPS)
    assert {"diverging_loss", "exploding_gradients"} & set(high["watch"])
