"""Unsure answers sent back for review, and the drift report.

The production endpoint keeps the pictures it was unsure about (--review-folder); a
person labels them in the review window (a real Tk window on Xvfb, real key events); the
labels become corrections that `python -m pipeline.feedback` lists. `python -m
serving.report` draws the endpoint's answer log beside the version's evaluation.
"""

import base64
import io
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from test_production import start_production, stop_production, store_copy, wait_for_endpoint

from core.review import ReviewFolder
from digit_reader.contract import UNSURE_BELOW, png
from serving.client import post, request_body

from helpers import stage_env, store
from pictures import scrawl

BOUND = 50  # the endpoint's --review-max here


def unsure(answer: dict) -> bool:
    return any(box["confidence"] < UNSURE_BELOW for box in answer["boxes"])


def test_the_folder_keeps_the_newest_pictures_up_to_its_bound(tmp_path):
    folder = ReviewFolder(tmp_path / "review", limit=5)
    for number in range(12):
        folder.keep(scrawl(number), {"digits": str(number), "boxes": []}, version="3")
    kept = folder.pending()
    assert [k.answer["digits"] for k in kept] == ["7", "8", "9", "10", "11"]
    assert sorted(p.name for p in (tmp_path / "review").glob("*.png")) == sorted(
        k.picture.name for k in kept
    )  # the pictures went with their readings
    assert kept[0].picture.read_bytes() == scrawl(7)  # whole, as sent


def report(home: Path, work: Path | None = None, *args: str) -> subprocess.CompletedProcess:
    env = stage_env(MLFLOW_TRACKING_URI=store(work)) if work else stage_env()
    return subprocess.run(
        [sys.executable, "-m", "serving.report", "--home", str(home), *args],
        env=env,
        capture_output=True,
        text=True,
    )


def test_a_report_without_answers_says_so_in_one_line(tmp_path):
    result = report(tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no answers of any version in {tmp_path / 'answers.jsonl'} in the last 24 "
        "hours: is this the endpoint's --home, and has it answered?"
    )


@pytest.fixture(scope="module")
def reviewing(work, tmp_path_factory):
    """The production endpoint, 2 workers, keeping unsure pictures in review/ (at most
    BOUND)."""
    copy = store_copy(work, tmp_path_factory.mktemp("reviewing"))
    endpoint = start_production(
        copy, "--workers", "2", "--review-folder", str(copy / "review"), "--review-max", str(BOUND)
    )
    wait_for_endpoint(endpoint)
    yield endpoint
    assert stop_production(endpoint).startswith("stopped by SIGTERM")


class Page(HTMLParser):
    """The report's pictures and table cells."""

    def __init__(self, html: str):
        super().__init__()
        self.images: dict[str, bytes] = {}
        self.cells: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs["src"].startswith("data:image/png;base64,"):
            self.images[attrs["alt"]] = base64.b64decode(attrs["src"].split(",", 1)[1])

    def handle_data(self, data):
        if self.lasttag in ("td", "th") and data.strip():
            self.cells.append(data.strip())


@pytest.mark.slow
def test_the_report_draws_live_answers_beside_the_evaluation(reviewing, test_digits, tmp_path):
    pictures = [png(digit) for digit in test_digits[:10]] + [scrawl(n) for n in range(5)]
    assert post(reviewing.url, request_body(pictures)).status == 200
    out = tmp_path / "report.html"
    result = report(reviewing.home, reviewing.work, "--version", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = Page(out.read_text())
    assert set(page.images) == {
        "Digits read",
        "Confidence of each digit",
        "Digits per picture",
        "Picture size",
        "Share of ink",
    }
    for picture in page.images.values():
        assert Image.open(io.BytesIO(picture)).size[0] > 300  # a plot, not an empty image
    assert page.cells[:3] == ["live", "evaluation", "pictures"]  # both sides, counted
    live, evaluated = int(page.cells[3]), int(page.cells[4])
    assert live >= 15 and evaluated > 0  # the warm-up pictures count too


def hand(*args) -> str:
    return subprocess.run(
        ["xdotool", *map(str, args)], check=True, capture_output=True, text=True
    ).stdout


@pytest.mark.slow
def test_unsure_pictures_are_labelled_in_the_review_window_and_become_corrections(
    reviewing, display, test_digits, tmp_path
):
    folder = reviewing.work / "review"
    reply = post(reviewing.url, request_body([png(test_digits[0]), scrawl(1)]))
    digit, scrawled = reply.answer["predictions"]
    assert unsure(scrawled) and scrawled["boxes"]
    pending = ReviewFolder(folder).pending()  # oldest first, as the window shows them
    assert pending[-1].answer["digits"] == scrawled["digits"]  # kept, the newest

    window = subprocess.Popen(
        [sys.executable, "-m", "gui", "--review", str(folder), "--feedback", str(tmp_path)],
        env=stage_env(),
    )
    try:
        [shown] = hand("search", "--sync", "--name", "Review unsure answers").split()
        hand("mousemove", "--window", shown, 40, 40)  # keys go to the window it points at
        for kept in pending:  # the digits as the person reads them, then Return
            hand("key", *["4"] * len(kept.answer["boxes"]), "Return")
        deadline = time.monotonic() + 60
        while ReviewFolder(folder).pending() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        window.terminate()
        window.wait(timeout=30)

    listed = subprocess.run(
        [sys.executable, "-m", "pipeline.feedback", "--folder", str(tmp_path), "list"],
        env=stage_env(),
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    read = [box["digit"] for kept in pending for box in kept.answer["boxes"]]
    assert sorted(line.split("  ")[1] for line in listed.stdout.splitlines()) == sorted(
        f"4 (read as {digit} by version 1)" for digit in read
    )
    assert ReviewFolder(folder).pending() == []
    assert not any(path.suffix == ".png" for path in folder.iterdir())  # the pictures left too


@pytest.mark.slow
def test_the_folder_never_holds_more_than_its_bound_under_10000_unsure_requests(
    reviewing, test_digits, tmp_path
):
    # Two digits written over each other: unsure, and one box (quicker to read than a scrawl).
    body = request_body([png((test_digits[0].astype(int) + test_digits[1]) // 2)])
    assert unsure(post(reviewing.url, body).answer["predictions"][0])
    (tmp_path / "body").write_bytes(body)
    folder, most, done = reviewing.work / "review", [0], threading.Event()

    def kept(pattern: str) -> int:  # files written whole (a file being written starts with .)
        return sum(not path.name.startswith(".") for path in folder.glob(pattern))

    def watch() -> None:
        while not done.wait(0.005):  # a look every 5 ms, leaving the cores to the endpoint
            most[0] = max(most[0], kept("*.json"), kept("*.png"))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        load = subprocess.run(
            ["hey", "-n", "10000", "-c", "16", "-m", "POST", "-T", "application/json"]
            + ["-D", str(tmp_path / "body"), f"{reviewing.url}/invocations"],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        done.set()
        watcher.join()
    assert "[200]\t10000 responses" in load.stdout, load.stdout
    assert 0 < most[0] <= BOUND
    assert len(ReviewFolder(folder).pending()) == BOUND
    assert kept("*.png") == BOUND  # no picture left without its reading
