"""The network's ONNX export (pipeline/export.py): it reads as the Keras network does, the
registered model runs it, and nothing that serves the model imports TensorFlow.

The export under test is the one the `work` fixture's pipeline made for its champion
(version 1) and registered beside the .keras file it came from.
"""

import io
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import psutil
import pytest
from PIL import Image

from core.errors import UserError
from digit_reader.contract import png, read_model
from digit_reader.lines import padded
from digit_reader.normalize import candidates
from digit_reader.reading import find_digits
from pipeline.evaluate import EXPORT_TOLERANCE, export_check
from pipeline.preprocess import IMAGES_MAGIC, read_idx
from serving.client import read_endpoint

from helpers import MODEL_NAME, REPO, serve, stage_env, store

VERSION_URI = f"models:/{MODEL_NAME}/1"


@pytest.fixture(scope="module")
def mnist_test(mirror) -> np.ndarray:
    return read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))


@pytest.fixture(scope="module")
def version_files(work, tmp_path_factory) -> Path:
    mlflow.set_tracking_uri(store(work))
    folder = tmp_path_factory.mktemp("version-1")
    return Path(mlflow.artifacts.download_artifacts(VERSION_URI, dst_path=str(folder)))


@pytest.fixture(scope="module")
def network(version_files):
    """The Keras network the version's export came from."""
    import keras

    return keras.models.load_model(version_files / "artifacts" / "model.keras", compile=False)


@pytest.fixture(scope="module")
def model(work):
    mlflow.set_tracking_uri(store(work))
    return mlflow.pyfunc.load_model(VERSION_URI)


def test_a_version_ships_the_export_beside_the_keras_file(version_files):
    assert {path.name for path in (version_files / "artifacts").iterdir()} == {
        "model.keras",
        "model.onnx",
        "lines.keras",
        "lines.onnx",
    }
    requirements = (version_files / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "tensorflow" not in requirements


def test_the_export_gives_the_probabilities_of_keras(network, classify, mnist_test):
    digits = mnist_test[:300, :, :, np.newaxis]
    keras_says = network.predict(digits, verbose=0)
    onnx_says = classify(digits)
    assert onnx_says.shape == (300, 10)  # the digits alone: NOT_A_DIGIT is left out
    assert np.abs(keras_says[:, :10] - onnx_says).max() <= EXPORT_TOLERANCE
    assert np.array_equal(keras_says[:, :10].argmax(axis=1), onnx_says.argmax(axis=1))


def test_the_line_readers_export_gives_the_probabilities_of_keras(version_files, model):
    import keras

    network = keras.models.load_model(version_files / "artifacts" / "lines.keras", compile=False)
    page = candidates(Image.open(REPO / "docs" / "three-digits.png"))
    frames = page.line.pixels.shape[1] // 4  # an answer per 4 columns of the line
    keras_says = np.asarray(keras.ops.softmax(network(padded(page.line))[0, :frames], axis=-1))
    onnx_says = model.unwrap_python_model().read_line(page)
    assert onnx_says.shape == (frames, 11)
    assert np.abs(keras_says - onnx_says).max() <= EXPORT_TOLERANCE


def test_the_model_reads_pictures_as_the_keras_network_does(network, model, mnist_test):
    """A picture of three digits and a few single ones: the registered model (its export)
    reads the digits that the reader reads with the Keras network."""
    pictures = [(REPO / "docs" / "three-digits.png").read_bytes()]
    pictures += [png(digit) for digit in mnist_test[:8]]

    def keras_classify(pixels):
        return network.predict(pixels, verbose=0)[:, :10]

    expected = [
        "".join(
            str(p.argmax()) for _, p in find_digits(Image.open(io.BytesIO(picture)), keras_classify)
        )
        for picture in pictures
    ]
    assert [result["digits"] for result in read_model(model, pictures)] == expected
    assert expected[0] == "721"


def test_evaluate_refuses_an_export_that_reads_otherwise(network, classify, mnist_test):
    digits = mnist_test[:200, :, :, np.newaxis]
    pictures = [png(digit) for digit in mnist_test[:5]]
    agreed = export_check(network, classify, digits, pictures)
    assert agreed["same_digits"] and agreed["max_probability_difference"] <= EXPORT_TOLERANCE

    def off(pixels):  # an export that is a little off: every probability 0.001 higher
        return classify(pixels) + 1e-3

    with pytest.raises(UserError) as refused:
        export_check(network, off, digits, pictures)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("the ONNX export reads differently from the Keras network")
    assert message.endswith("export it again with `dvc repro export`")


def test_loading_and_running_the_model_imports_no_tensorflow(work):
    program = (
        "import sys, mlflow\n"
        "from digit_reader.contract import read_model\n"
        f"model = mlflow.pyfunc.load_model({VERSION_URI!r})\n"
        f"[result] = read_model(model, [open({str(REPO / 'docs/three-digits.png')!r}, 'rb').read()])\n"
        "print(result['digits'], sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=work,
        env=stage_env(MLFLOW_TRACKING_URI=store(work)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "721 []"


def test_a_model_server_maps_no_tensorflow(work, model, mnist_test):
    """`python -m serving` on the version: it answers as the model in process does, and
    none of its processes has TensorFlow's libraries in memory."""
    pictures = [png(digit) for digit in mnist_test[:3]]
    with serve(work, "--model-uri", VERSION_URI) as server:
        assert read_endpoint(server.url, pictures) == read_model(model, pictures)
        root = psutil.Process(server.group)
        libraries = {
            Path(mapping.path).name
            for process in [root, *root.children(recursive=True)]
            for mapping in process.memory_maps()
        }
    assert "libonnxruntime" in " ".join(libraries)
    assert not [name for name in libraries if "tensorflow" in name]
