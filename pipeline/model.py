"""The CNN of the original Keras MNIST tutorial, taking raw 0-255 pixels.

Its answers are the digits 0-9 and an 11th, NOT_A_DIGIT (digit_reader/normalize.py): a
candidate the reader cut out that is not one whole digit (pipeline/pieces.py).
"""

import keras
from keras import layers

ANSWERS = 11  # the digits 0-9 and NOT_A_DIGIT


def build_model(
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
) -> keras.Model:
    """Conv 32, Conv 64, MaxPool, Dropout, Dense 256, Dropout, softmax over 11; Adadelta."""
    model = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1), dtype="uint8", name="pixels"),
            # Scaling lives in the model so that no client can forget it.
            layers.Rescaling(1 / 255),
            layers.Conv2D(32, 3, activation="relu"),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dropout(0.5),
            # float32 probabilities, also under mixed precision
            layers.Dense(ANSWERS, activation="softmax", dtype="float32"),
        ],
        name="mnist_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adadelta(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
