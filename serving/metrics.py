"""GET /metrics of the production endpoint: what its nginx and its model servers saw, in
Prometheus' text format (docs/monitoring.md names each metric and alert).

- digits_requests_total{version, status} and digits_request_seconds{version}: requests to
  /invocations, from nginx's access log, read up to its end at each scrape, so that the
  answers nginx gives itself (413, 503) count too;
- the model servers' counts (serving/answers.py), summed over every server process of this
  run of the endpoint (prometheus_client's multiprocess mode: a server that dies takes
  none of its counts with it);
- digits_serving_version and digits_alias_version: the version nginx sends requests to,
  and the one the alias named at the last look-up;
- digits_unsure_baseline{version}: the share of unsure answers the version showed on its
  evaluation (its tag `unsure_share`, set by register), for the unsure alert.

It listens on a loopback port; nginx passes GET /metrics on the endpoint's port to it.
"""

import re
import shutil
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# A line of the access log (serving/production.py's log_format): the parts counted here.
ACCESS_LINE = re.compile(
    r"status=(?P<status>\d+) latency=(?P<latency>[\d.]+)s version=(?P<version>\S*) "
    r'body=\S* "\S+ /invocations[ ?]'
)


class EndpointMetrics:
    """The registry that /metrics shows, and the access log it counts requests from."""

    def __init__(self, home: Path):
        self.access_log = home / "access.log"
        self.offset = self.access_log.stat().st_size if self.access_log.exists() else 0
        self.lock = threading.Lock()
        # The model servers' files: emptied at each start, as counters start from zero.
        self.folder = home / "metrics"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.registry = CollectorRegistry()
        self.registry.register(self)  # first: the log is read before anything is collected
        MultiProcessCollector(self.registry, path=str(self.folder))
        labels = {"registry": self.registry}
        self.requests = Counter(
            "digits_requests", "Requests answered", ["version", "status"], **labels
        )
        self.seconds = Histogram(
            "digits_request_seconds",
            "Time nginx took to answer",
            ["version"],
            buckets=LATENCY_BUCKETS,
            **labels,
        )
        self.serving = Gauge("digits_serving_version", "The version being served", **labels)
        self.alias = Gauge("digits_alias_version", "The version the alias names", **labels)
        self.baseline = Gauge(
            "digits_unsure_baseline",
            "Share of unsure answers on the version's evaluation",
            ["version"],
            **labels,
        )

    def serve(self, port: int) -> None:
        """Answer scrapes on 127.0.0.1:port, in a thread of this process."""
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def now_serving(self, version: str, unsure_share: str | None) -> None:
        self.serving.set(int(version))
        self.baseline.clear()
        if unsure_share is not None:  # versions registered before it was measured have none
            self.baseline.labels(version).set(float(unsure_share))

    def describe(self) -> list:
        return []

    def collect(self) -> list:
        """Count the access log's new lines (the registry calls this at each scrape)."""
        with self.lock:
            for line in self.new_lines():
                if match := ACCESS_LINE.search(line):
                    version = match["version"].strip("-")
                    self.requests.labels(version, match["status"]).inc()
                    self.seconds.labels(version).observe(float(match["latency"]))
        return []

    def new_lines(self) -> list[str]:
        """The whole lines written since the last call (a line being written waits)."""
        if not self.access_log.exists():
            return []
        if self.access_log.stat().st_size < self.offset:
            self.offset = 0  # the log was rotated or emptied
        with open(self.access_log, "rb") as log:
            log.seek(self.offset)
            data = log.read()
        whole = data[: data.rfind(b"\n") + 1]
        self.offset += len(whole)
        return whole.decode(errors="replace").splitlines()
