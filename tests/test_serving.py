"""Promotion by alias and the real `mlflow models serve` endpoint, with models trained here.

The store of the `work` fixture holds three small models: a good one (champion), a
middling one (challenger) and a poor one (below promote.min_accuracy, no alias). The
endpoint is started on @champion after the poor one is promoted by force.
"""

import base64
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from digit_reader.contract import (
    MAX_BATCH,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    encode,
    png,
    read_model,
)
from pipeline.preprocess import IMAGES_MAGIC, read_idx
from serving.client import EndpointError, post, read_endpoint, request_body, wait_until_ready

from helpers import MODEL_NAME, free_port, serve, stage_env, store

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only


@pytest.fixture(scope="module")
def client(work) -> mlflow.MlflowClient:
    mlflow.set_tracking_uri(store(work))
    return mlflow.MlflowClient()


def champion_version(client, alias: str) -> str:
    return str(client.get_model_version_by_alias(MODEL_NAME, alias).version)


def version(client, number: str):
    return client.get_model_version(MODEL_NAME, number)


def accuracy(client, number: str) -> float:
    return float(version(client, number).tags["test_accuracy"])


def promote(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.promote", *args],
        cwd=work,
        env=stage_env(MLFLOW_TRACKING_URI=store(work)),
        capture_output=True,
        text=True,
    )


def test_first_good_model_is_champion_later_ones_wait(client):
    assert accuracy(client, "1") > accuracy(client, "2") >= 0.5 > accuracy(client, "3")
    assert champion_version(client, "champion") == "1"
    assert champion_version(client, "challenger") == "2"
    assert version(client, "3").aliases == []


def test_promote_lists_versions(work, client):
    result = promote(work)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["version", "test", "acc", "canvases", "drawn", "hard"]
    v1 = next(line for line in lines if line.split()[0] == "1")
    assert f"{accuracy(client, '1'):.4f}" in v1 and "champion" in v1
    assert version(client, "1").run_id in v1
    # Whole written numbers read right, per set of the benchmark, as evaluate measured them.
    tags = version(client, "1").tags
    assert v1.split()[2:5] == [
        f"{float(tags[f'numbers_{s}']):.2%}" for s in ("canvases", "drawn", "hard")
    ]


def test_a_worse_model_is_refused(work, client):
    result = promote(work, "3")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: refusing to promote version 3 (test accuracy {accuracy(client, '3')}) over "
        f"champion version 1 (test accuracy {accuracy(client, '1')}); add --force to promote it anyway"
    )
    assert champion_version(client, "champion") == "1"


def test_promote_an_unknown_version(work):
    result = promote(work, "42")
    assert (
        result.returncode == 1 and result.stderr.strip() == f"error: {MODEL_NAME} has no version 42"
    )


def test_force_promotes_it(work, client):
    result = promote(work, "3", "--force")
    assert result.returncode == 0, result.stderr
    assert champion_version(client, "champion") == "3"


@pytest.fixture(scope="module")
def endpoint(work, client):
    """`python -m serving --workers 2` on @champion, which it makes version 3 (the poor
    model, promoted by force, as test_force_promotes_it does): every test that uses it runs
    against two worker processes, also when it is selected alone."""
    assert promote(work, "3", "--force").returncode == 0
    assert champion_version(client, "champion") == "3"
    with serve(work, "--workers", str(WORKERS)) as server:
        assert len(workers(server.group)) == WORKERS
        yield server.url


WORKERS = 2


def workers(group: int) -> list[int]:
    """The process ids of the uvicorn workers in a server's process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        # uvicorn starts its workers with multiprocessing (beside a resource tracker).
        if int(fields[2]) == group and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_workers_answer_concurrent_clients_alike(endpoint, in_process, test_digits):
    """16 clients at once over 2 workers: every answer is the in-process model's."""
    from concurrent.futures import ThreadPoolExecutor

    pictures = [png(digit) for digit in test_digits[:32]]
    expected = [result["digits"] for result in read_model(in_process, pictures)]
    with ThreadPoolExecutor(16) as clients:
        answers = list(clients.map(lambda p: read_endpoint(endpoint, [p])[0], pictures))
    assert [answer["digits"] for answer in answers] == expected


def split(*rows: str) -> bytes:
    """A request body whose `image` rows are these strings, whatever they hold."""
    body = {"dataframe_split": {"columns": ["image"], "data": [[row] for row in rows]}}
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def test_digits(mirror) -> np.ndarray:
    return read_idx(mirror / "t10k-images-idx3-ubyte.gz", IMAGES_MAGIC, (10_000, 28, 28))[:20]


@pytest.fixture(scope="module")
def in_process(client):
    """The champion loaded in this process: the endpoint must answer the same."""
    return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/3")


def test_endpoint_serves_the_promoted_version(endpoint, in_process, test_digits):
    [served] = read_endpoint(endpoint, [png(test_digits[0])])
    [local] = read_model(in_process, [png(test_digits[0])])
    assert served["boxes"][0]["probabilities"] == local["boxes"][0]["probabilities"]


def test_one_image(endpoint, test_digits):
    status, body, _ = post(endpoint, request_body([png(test_digits[0])]))
    assert status == 200
    [result] = body["predictions"]
    [found] = result["boxes"]
    assert result["digits"] == str(found["digit"])
    keys = {"x", "y", "width", "height", "digit", "confidence", "probabilities", "pixels"}
    assert keys == set(found)
    assert len(found["probabilities"]) == 10 and found["confidence"] == max(found["probabilities"])
    assert (found["x"], found["y"], found["width"], found["height"]) == (6, 7, 16, 20)
    # What the network read: the MNIST digit again, as MNIST centres it (light on black).
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(found["pixels"]))))
    assert seen.shape == (28, 28)
    assert np.corrcoef(seen.ravel(), test_digits[0].ravel())[0, 1] > 0.9


def test_a_batch_in_each_input_format(endpoint, in_process, test_digits):
    pictures = [png(d) for d in test_digits[:8]]
    expected = [result["digits"] for result in read_model(in_process, pictures)]
    images = [encode(picture) for picture in pictures]
    bodies = [
        request_body(pictures),
        json.dumps({"dataframe_records": [{"image": i} for i in images]}).encode(),
        json.dumps({"inputs": {"image": images}}).encode(),
    ]
    for body in bodies:
        status, answer, _ = post(endpoint, body)
        assert status == 200, answer
        assert [p["digits"] for p in answer["predictions"]] == expected


def test_a_picture_of_several_digits(endpoint, in_process, test_digits):
    canvas = np.full((100, 300), 255, dtype=np.uint8)
    for left, digit in zip((10, 100, 230), test_digits[:3], strict=True):
        canvas[30:58, left : left + 28] = 255 - digit  # dark ink on white, uneven spacing
    [result] = read_endpoint(endpoint, [png(canvas)])
    assert [b["x"] for b in result["boxes"]] == sorted(b["x"] for b in result["boxes"])
    assert len(result["boxes"]) == 3 and len(result["digits"]) == 3
    singles = read_model(in_process, [png(d) for d in test_digits[:3]])
    assert result["digits"] == "".join(single["digits"] for single in singles)


def test_a_blank_picture_reads_nothing(endpoint):
    blank = png(np.full((200, 400), 255, dtype=np.uint8))
    assert read_endpoint(endpoint, [blank]) == [{"digits": "", "boxes": []}]


def test_more_pictures_than_one_request_holds(endpoint, test_digits):
    """The client splits them into requests the model accepts."""
    pictures = [png(test_digits[i % 20]) for i in range(MAX_BATCH + 3)]
    results = read_endpoint(endpoint, pictures)
    assert len(results) == MAX_BATCH + 3
    assert results[MAX_BATCH] == results[MAX_BATCH % 20]


def big_png() -> bytes:
    return png(np.full((3500, 4000), 255, dtype=np.uint8))  # 14 megapixels, a small file


BAD_REQUESTS = [
    (b"{not json", None),
    (
        json.dumps({"dataframe_split": {"columns": ["picture"], "data": [["abc"]]}}).encode(),
        "missing column 'image' (base64-encoded PNG or JPEG pictures)",
    ),
    (split("this is not base64!"), "image 0: not valid base64"),
    (split(encode(b"GIF89a but not really")), "image 0: not a readable PNG or JPEG image"),
    (
        split(encode(b"x" * (MAX_IMAGE_BYTES + 100_000))),
        f"image 0: larger than the limit of {MAX_IMAGE_BYTES} bytes",
    ),
    (
        split("PIXELS"),
        f"image 0: 4000x3500 pixels is larger than the limit of {MAX_IMAGE_PIXELS} pixels",
    ),
    (
        request_body([png(np.zeros((28, 28), np.uint8))] * (MAX_BATCH + 1)),
        f"{MAX_BATCH + 1} images: at most {MAX_BATCH} per request",
    ),
    (request_body([]), "empty batch: send at least one image"),
    (json.dumps({"inputs": {"image": []}}).encode(), "empty batch: send at least one image"),
]


@pytest.mark.parametrize("body, message", BAD_REQUESTS)
def test_bad_requests_get_a_short_4xx_and_the_server_keeps_serving(
    endpoint, test_digits, body, message
):
    if body == split("PIXELS"):
        body = split(encode(big_png()))
    status, answer, _ = post(endpoint, body)
    assert 400 <= status < 500
    if message:
        assert answer["message"] == message
    assert "Traceback" not in json.dumps(answer) and "stack_trace" not in answer
    assert len(json.dumps(answer)) < 500  # never the payload echoed back
    assert read_endpoint(endpoint, [png(test_digits[0])])[0]["digits"] != ""


def test_the_command_line_client(endpoint, work, test_digits):
    (work / "seven.png").write_bytes(png(test_digits[0]))
    (work / "blank.png").write_bytes(png(np.zeros((28, 28), dtype=np.uint8)))
    result = subprocess.run(
        [sys.executable, "-m", "serving.client", "seven.png", "blank.png", "--url", endpoint],
        cwd=work,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    seven, blank = result.stdout.splitlines()
    assert seven.startswith("seven.png: ") and "(" in seven
    assert blank == "blank.png: no digits found"


def test_the_client_names_a_missing_endpoint(work, test_digits):
    (work / "seven.png").write_bytes(png(test_digits[0]))
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "serving.client", "seven.png", "--url", url],
        cwd=work,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: no endpoint answers at {url} (")
    assert result.stderr.strip().endswith("start one with `python -m serving`")


def test_a_version_ships_the_model_code_only(work, client):
    """code/ of a version holds digit_reader/ and nothing else of ours (no endpoints, no
    nginx template), and the version's code_md5 covers all of it."""
    from core.packaging import MODEL_CODE, MODEL_PACKAGE
    from pipeline.register import md5

    files = Path(
        mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}/1", dst_path=str(work / "v1"))
    )
    assert [folder.name for folder in (files / "code").iterdir()] == ["digit_reader"]
    shipped = {path.name for path in (files / "code" / "digit_reader").glob("*.py")}
    assert shipped == {path.name for path in MODEL_PACKAGE.glob("*.py")}
    assert version(client, "1").tags["code_md5"] == md5(*MODEL_CODE)


def test_commands_work_from_a_subfolder(work):
    """No MLFLOW_TRACKING_URI: the store and params.yaml are found at the root above."""
    folder = work / "some" / "folder"
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.promote"],
        cwd=folder,
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["version", "test"]
    assert "champion" in result.stdout
    assert not (folder / "mlflow.db").exists()


def test_sigterm_stops_the_server_with_exit_143(work):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "--port",
            str(port),
            "--model-uri",
            f"models:/{MODEL_NAME}/1",
        ],
        cwd=work,
        env=stage_env(MLFLOW_TRACKING_URI=store(work)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, running=lambda: process.poll() is None)
        process.send_signal(signal.SIGTERM)  # to our process only, as `kill PID` does
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143
        assert "stopped by SIGTERM: the model server is stopped" in stderr.splitlines()
        with pytest.raises(EndpointError):  # the mlflow server went with it
            wait_until_ready(url, timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
