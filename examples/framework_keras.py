"""Keras 3 (torch backend) + the doctor: one callback. A sigmoid layer with a large init saturates.
Runs on CPU in seconds.

    KERAS_BACKEND=torch python examples/framework_keras.py
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import impediments as imp  # noqa: E402

if __name__ == "__main__":
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="sigmoid", kernel_initializer=keras.initializers.RandomNormal(stddev=8.0)),
        keras.layers.BatchNormalization(),
        keras.layers.Dense(3),
    ])
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    doctor = imp.integrations.keras.Doctor(out_dir="keras-doctor-out")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[doctor])
    assert "saturated_units" in doctor.report.codes      # named by the Keras layer: dense/sigmoid#0
