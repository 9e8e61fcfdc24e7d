"""The Keras 3 callback on the torch backend: Sequential, Functional and subclassed models, each healthy
and broken (sigmoid with a large init -> saturated_units; a trainable=False BatchNormalization trained
-> bn_inference_mode_in_training at info), with findings named by Keras layer paths."""
from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"      # must precede the first import of keras

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras", reason="the keras extra (make test installs it)")

from impediments.integrations import keras as imp_keras  # noqa: E402

STEPS, BATCH = 12, 16


def init(broken):
    return keras.initializers.RandomNormal(stddev=8.0, seed=1) if broken else keras.initializers.GlorotUniform(seed=1)


def sequential(broken):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="sigmoid", kernel_initializer=init(broken),
                                                                   name="dense"),
                             keras.layers.BatchNormalization(name="batch_normalization"),
                             keras.layers.Dense(3, name="dense_1")], name="seq")


def functional(broken):
    x = keras.Input((8,))
    h = keras.layers.Dense(32, activation="sigmoid", kernel_initializer=init(broken), name="dense")(x)
    h = keras.layers.BatchNormalization(name="batch_normalization")(h)
    return keras.Model(x, keras.layers.Dense(3, name="dense_1")(h), name="func")


class Subclassed(keras.Model):
    def __init__(self, broken):
        super().__init__(name="sub")
        self.hidden = keras.layers.Dense(32, activation="sigmoid", kernel_initializer=init(broken), name="dense")
        self.norm = keras.layers.BatchNormalization(name="batch_normalization")
        self.out = keras.layers.Dense(3, name="dense_1")

    def call(self, x, training=False):
        return self.out(self.norm(self.hidden(x), training=training))


STYLES = {"sequential": sequential, "functional": functional, "subclassed": Subclassed}


def fit(style, broken=False, frozen_bn=False, **doc_kw):
    keras.utils.set_random_seed(0)
    model = STYLES[style](broken)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * STEPS, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    model(x[:2])                                  # build (subclassed models have no input spec)
    if frozen_bn:
        model.get_layer("batch_normalization").trainable = False
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    doc = imp_keras.Doctor(echo=False, **doc_kw)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[doc])
    return doc, model


@pytest.mark.parametrize("style", ["sequential", "functional", "subclassed"])
def test_healthy_saturated_and_frozen_bn(style, tmp_path):
    doc, model = fit(style, out_dir=tmp_path)
    rep = doc.report
    s = rep.stats
    assert s.steps == STEPS and s.loss.count == STEPS
    assert "dense/sigmoid#0" in s.activations
    assert {"dense.kernel", "dense.bias", "dense_1.kernel"} <= set(s.params)
    assert all(p.samples > 0 and p.grad_norm > 0 for p in s.params.values())
    assert s.batchnorm["batch_normalization"].training_forwards == STEPS
    assert s.batchnorm["batch_normalization"].running_stats_forwards_in_training == 0
    assert "saturated_units" not in rep.codes and "bn_inference_mode_in_training" not in rep.codes
    assert "optimizer" in rep.skipped                             # Keras optimizer: no update ratios
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.html").exists()
    assert "compute_loss" not in vars(model)                      # the loss wrapper is gone after fit

    broken, _ = fit(style, broken=True)
    sat = broken.report.by_code("saturated_units")
    assert sat and any("dense/sigmoid#0" in f.where for f in sat), broken.report.codes

    frozen, _ = fit(style, frozen_bn=True)
    bn = frozen.report.by_code("bn_inference_mode_in_training")
    assert [f.severity for f in bn] == ["info"] and list(bn[0].where) == ["batch_normalization"]
    assert frozen.report.stats.batchnorm["batch_normalization"].running_stats_forwards_in_training == STEPS


def test_jit_compile_warns_and_backend_is_checked():
    keras.utils.set_random_seed(0)
    model = sequential(False)
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    x = np.zeros((BATCH, 8), "float32")
    doc = imp_keras.Doctor(echo=False)
    doc.set_model(model)
    with pytest.warns(UserWarning, match="jit_compile=True"):
        doc.on_train_begin()
    doc.close()
    assert not any(layer._forward_pre_hooks for layer in model._flatten_layers(include_self=False))
    assert model(x).shape == (BATCH, 3)
