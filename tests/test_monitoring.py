"""Watching the production endpoint: its GET /metrics, its answer log, and a real
Prometheus that loads monitoring/alerts.yml as it is and scrapes the endpoint.

The alert rules themselves are unit-tested by `promtool test rules` (alerts-test.yml).
"""

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from test_production import (
    kill_tree,
    server_port,
    start_production,
    stop_production,
    store_copy,
    wait_for_endpoint,
    wait_until,
)

from core.answer_log import picture_facts
from digit_reader.contract import png
from serving.answers import rotate
from serving.client import post, request_body

from helpers import MODEL_NAME, free_port, store
from pictures import scrawl

MONITORING = Path(__file__).parent.parent / "monitoring"
BASELINE = 0.1  # the unsure share version 1 is given here (register measures the real one)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=MONITORING, capture_output=True, text=True)


def test_the_rules_and_the_config_are_valid_and_pass_their_unit_tests():
    for args in (("check", "rules", "alerts.yml"), ("check", "config", "prometheus.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    result = promtool("test", "rules", "alerts-test.yml")
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_a_full_answer_log_is_rotated_and_one_old_one_kept(tmp_path):
    log = tmp_path / "answers.jsonl"
    log.write_text("old\n")
    (tmp_path / "answers.jsonl.1").write_text("older\n")
    rotate(tmp_path, max_bytes=100)  # not full yet
    assert log.read_text() == "old\n"
    log.write_text("x" * 101)
    rotate(tmp_path, max_bytes=100)
    assert not log.exists() and (tmp_path / "answers.jsonl.1").read_text() == "x" * 101


def test_the_share_of_ink_counts_pixels_far_from_the_background_dark_or_light():
    paper = np.full((40, 50), 200, np.uint8)  # grey paper
    paper[:8, :] = 20  # dark ink on a fifth of it
    paper[8:15, :] = 255  # white, but within 64 grey levels of the paper: not ink
    assert picture_facts(png(paper)) == {
        "bytes": len(png(paper)),
        "width": 50,
        "height": 40,
        "ink": 0.2,
    }
    board = np.full((40, 50), 30, np.uint8)  # chalk on a board: light ink
    board[:, :5] = 250
    assert picture_facts(png(board))["ink"] == 0.1


@pytest.fixture(scope="module")
def monitored(work, tmp_path_factory):
    """The production endpoint, 2 workers, champion version 1 with an unsure share of
    BASELINE on its evaluation."""
    copy = store_copy(work, tmp_path_factory.mktemp("monitored"))
    client = mlflow.MlflowClient(store(copy))
    client.set_model_version_tag(MODEL_NAME, "1", "unsure_share", str(BASELINE))
    endpoint = start_production(copy, "--workers", "2")
    wait_for_endpoint(endpoint)
    yield endpoint
    assert stop_production(endpoint).startswith("stopped by SIGTERM")


def scraped(url: str) -> dict[str, float]:
    """GET /metrics as {series: value}, comments left out."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = [line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")]
    return {name: float(value) for name, value in series}


@pytest.mark.slow
def test_metrics_count_requests_digits_and_what_nginx_answers_itself(monitored, test_digits):
    answers = [post(monitored.url, request_body([png(d)])) for d in test_digits[:20]]
    assert [reply.status for reply in answers] == [200] * 20
    too_large = post(monitored.url, b"x" * 16_000_001)
    assert too_large.status == 413
    # nginx logs a refused request once it has read and thrown away what the client
    # still sends (its lingering close): the count may come a moment after the answer.
    wait_until(lambda: refused(scraped(monitored.url)), 60, "the 413 counted")
    metrics = scraped(monitored.url)
    assert metrics['digits_requests_total{status="200",version="1"}'] >= 20
    timed = sum(v for k, v in metrics.items() if k.startswith("digits_request_seconds_count"))
    assert timed >= 21
    digits = [box["digit"] for reply in answers for box in reply.answer["predictions"][0]["boxes"]]
    # Each server also reads a warm-up picture when it starts: counted too.
    assert metrics['digits_confidence_count{version="1"}'] >= len(digits)
    assert metrics['digits_confidence_bucket{le="+Inf",version="1"}'] >= len(digits)
    read = sum(v for k, v in metrics.items() if k.startswith("digits_read_total"))
    assert read >= len(digits)
    assert metrics['digits_pictures_total{version="1"}'] >= 20
    assert metrics["digits_serving_version"] == metrics["digits_alias_version"] == 1
    assert metrics['digits_unsure_baseline{version="1"}'] == BASELINE


def refused(metrics: dict[str, float]) -> float:
    """Requests answered 413, of any version."""
    return sum(v for k, v in metrics.items() if k.startswith('digits_requests_total{status="413"'))


@pytest.mark.slow
def test_each_answered_picture_is_logged_without_the_picture(monitored, test_digits):
    body = request_body([png(test_digits[0]), scrawl(0)])
    reply = post(monitored.url, body)
    lines = (monitored.home / "answers.jsonl").read_text().splitlines()
    *_, digit, scrawled = [json.loads(line) for line in lines]
    for logged, answer in zip((digit, scrawled), reply.answer["predictions"], strict=True):
        assert logged["version"] == "1" and logged["digits"] == answer["digits"]
        assert logged["confidences"] == [box["confidence"] for box in answer["boxes"]]
        assert 0 < logged["ink"] < 0.5
    assert (digit["width"], digit["height"], digit["bytes"]) == (28, 28, len(png(test_digits[0])))
    assert (scrawled["width"], scrawled["height"]) == (120, 120)
    assert set(digit) == {
        "time",
        "version",
        "digits",
        "confidences",
        "bytes",
        "width",
        "height",
        "ink",
    }


def start_prometheus(folder: Path, target: str) -> tuple[subprocess.Popen, str]:
    """Prometheus on loopback with the repository's alert rules, scraping target every
    second; its own process group."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "alerts.yml")],
        "scrape_configs": [{"job_name": "digits", "static_configs": [{"targets": [target]}]}],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    process = subprocess.Popen(
        ["prometheus", f"--config.file={folder / 'prometheus.yml'}"]
        + [f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "prometheus.log", "w"),
        start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


def api(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v1/{path}", timeout=10) as response:
        return json.load(response)["data"]


def unsure_alerts(url: str) -> list[dict]:
    return [
        a
        for a in api(url, "alerts")["alerts"]
        if a["labels"]["alertname"] == "DigitsUnsureAnswersHigh"
    ]


@pytest.mark.slow
def test_prometheus_alerts_on_scrawls_and_not_on_digits(monitored, test_digits, tmp_path):
    target = monitored.url.removeprefix("http://")
    prometheus, url = start_prometheus(tmp_path, target)
    try:
        wait_until(lambda: is_up(url), 60, f"Prometheus scrapes {target}")
        for digit in test_digits:
            assert post(monitored.url, request_body([png(digit)])).status == 200
        time.sleep(5)  # five scrapes and five evaluations of the rules
        assert unsure_alerts(url) == [], "digits read as usual raised the unsure alert"
        for seed in range(40):
            assert post(monitored.url, request_body([scrawl(seed)])).status == 200
        # Pending at once, firing after the rule's `for: 1m`.
        wait_until(lambda: [a["state"] for a in unsure_alerts(url)] == ["firing"], 120, "firing")
        [alert] = unsure_alerts(url)
        assert alert["labels"]["version"] == "1"
    finally:
        os.killpg(prometheus.pid, signal.SIGTERM)
        prometheus.wait(timeout=30)


def is_up(url: str) -> bool:
    try:
        targets = api(url, "targets")["activeTargets"]
    except OSError:
        return False  # not listening yet
    return [t["health"] for t in targets] == ["up"]


@pytest.mark.slow
def test_a_model_server_that_dies_takes_none_of_its_counts_with_it(monitored, test_digits):
    for digit in test_digits[:4]:
        assert post(monitored.url, request_body([png(digit)])).status == 200
    before = scraped(monitored.url)['digits_pictures_total{version="1"}']
    victim = monitored.model_servers()[0]
    port = server_port(victim)
    kill_tree(victim)
    after = scraped(monitored.url)['digits_pictures_total{version="1"}']
    assert after >= before
    # Until the endpoint has started it again: it is whole for the next test.
    wait_until(lambda: f"model server on port {port} is back" in monitored.printed(), 90, "back")
