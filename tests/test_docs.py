"""The README is the front door: short, and its headline numbers are the committed run's."""

import json
import re

from helpers import REPO

README = (REPO / "README.md").read_text()
METRICS = json.loads((REPO / "reports" / "metrics.json").read_text())


def headline_rows() -> dict[str, str]:
    """The rows of the table under "What you get": label -> the percentage shown."""
    section = README.split("## What you get", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| (.+?) \| ([\d.]+%) \|$", section, flags=re.M))


def as_shown(fraction: float, shown: str) -> str:
    """fraction written with as many decimals as the README shows."""
    decimals = len(shown.rstrip("%").partition(".")[2])
    return f"{fraction * 100:.{decimals}f}%"


def test_the_headline_numbers_are_those_of_reports_metrics_json():
    rows = headline_rows()
    expected = {
        "the network": METRICS["test"]["accuracy"],
        "as a PNG": METRICS["test"]["picture_accuracy"],
    } | {f"`{name}`": right for name, right in METRICS["numbers"].items()}
    assert len(rows) == len(expected)
    for label, shown in rows.items():
        [key] = [key for key in expected if key in label]
        assert shown == as_shown(expected[key], shown), label


def test_the_readme_is_a_front_door_not_a_manual():
    assert len(README.splitlines()) <= 200


def test_every_link_of_the_docs_leads_somewhere():
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for link in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if not link.startswith(("http://", "https://")):
                assert (page.parent / link).exists(), f"{page.name}: {link}"
