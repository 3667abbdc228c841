"""The team set-up, for real on loopback: PostgreSQL that asks for a password,
`python -m team.server` behind HTTPS (a CA of the tests' own) with its login, the
pipeline, promotion, the endpoint and the app against it, guessed passwords refused,
no password in sight, a DVC remote, and a backup restored."""

import base64
import hashlib
import http.client
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest

from core.packaging import EXAMPLE as PACKAGED_EXAMPLE
from core.paths import MODEL_PATH, in_clone
from serving.client import read_endpoint
from team import local
from team.local import ADMIN_PASSWORD

from helpers import (
    MODEL_NAME,
    commit,
    free_port,
    project_copy,
    serve,
    set_params,
    sh,
    stage_env,
    store,
)

pytestmark = pytest.mark.slow  # trains models or starts services: `make test` only

EXAMPLE = PACKAGED_EXAMPLE.read_bytes()  # "42"
TINY = {
    "preprocess": {"val_size": 200, "train_subset": 1000},
    "pieces": {"numbers": 20},
    "train": {"epochs": 2, "learning_rate": 1.0, "warmup_epochs": 0, "augment": False},
    "promote": {"min_accuracy": 0.5},
}


@dataclass(frozen=True)
class Team:
    url: str
    home: Path  # the server's folder: artifacts, login settings
    cluster: local.Cluster  # its PostgreSQL
    ca: Path | None = None  # the certificate of the CA that signed the server's, for HTTPS

    def trust(self) -> dict[str, str]:
        """The client setting that trusts the server's certificate."""
        return {"MLFLOW_TRACKING_SERVER_CERT_PATH": str(self.ca)} if self.ca else {}

    def login(self, user: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
        """The environment of a client of this server with this login."""
        return {
            "MLFLOW_TRACKING_URI": self.url,
            "MLFLOW_TRACKING_USERNAME": user,
            "MLFLOW_TRACKING_PASSWORD": password,
            **self.trust(),
        }


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> local.Certificates:
    return local.certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture(scope="module")
def team(tmp_path_factory, tls) -> Iterator[Team]:
    """PostgreSQL in a folder of its own, and `python -m team.server` behind HTTPS, on free
    loopback ports."""
    home = tmp_path_factory.mktemp("server")
    with local.cluster() as database, local.tracking_server(database, home, tls=tls) as server:
        yield Team(server.url, home, database, tls.ca)


def ask(team: Team, user: str, password: str, source: str = "127.0.0.1") -> int:
    """One MLflow request over HTTPS from a loopback address; the status of the answer."""
    port = int(team.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=team.ca)
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, source_address=(source, 0), timeout=30
    )
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        connection.request(
            "GET",
            "/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Authorization": f"Basic {token}"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def client(team) -> Iterator[mlflow.MlflowClient]:
    """The admin's client of the server, in this process."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in team.login().items():
            patch.setenv(name, value)
        yield mlflow.MlflowClient(tracking_uri=team.url, registry_uri=team.url)


@pytest.fixture(scope="module")
def team_repo(team, tmp_path_factory, mirror) -> Path:
    """A clone that ran `dvc repro` against the server as the admin, results committed."""
    repo = project_copy(tmp_path_factory.mktemp("team-repo"), **TINY)
    sh("dvc", "repro", cwd=repo, MNIST_MIRROR=str(mirror), **team.login())
    commit(repo, "trained against the team's server")
    return repo


def test_server_prints_the_uri_and_asks_for_a_login(team):
    log = (team.home / "server.log").read_text()
    assert f"tracking server for the team: {team.url}" in log
    assert f"export MLFLOW_TRACKING_URI={team.url}" in log

    context = ssl.create_default_context(cafile=team.ca)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(team.url, timeout=10, context=context)
    assert refused.value.code == 401
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    page = urllib.request.Request(team.url, headers={"Authorization": f"Basic {token}"})
    with urllib.request.urlopen(page, timeout=10, context=context) as answer:  # the MLflow UI
        assert answer.status == 200 and b"<html" in answer.read().lower()


def test_the_pipeline_tracks_and_registers_through_the_server(team, team_repo, client):
    [version] = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == version.version
    run = client.get_run(version.run_id)
    assert run.data.params["train.epochs"] == "2"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert run.data.metrics["test_accuracy"] > 0.5
    plots = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/training_curves.png", "plots/confusion.png"} <= plots
    # Proxied artifacts: the files sit on the server's disk, none in the clone.
    assert list((team.home / "artifacts").rglob("*.keras"))
    assert not (team_repo / "mlruns").exists()


def test_promote_serve_and_the_app_load_from_the_server(team, team_repo):
    out = sh(sys.executable, "-m", "pipeline.promote", "1", cwd=team_repo, **team.login())
    assert f"{MODEL_NAME}@champion is now version 1" in out

    with serve(team_repo, **team.login()) as server:
        [answer] = read_endpoint(server.url, [EXAMPLE])
    assert len(answer["digits"]) == 2  # a model trained on 1,000 images may misread them

    # What the drawing app does when it starts (gui/readers.py), and one reading.
    app = (
        "from gui.readers import LocalModel; from core.registry import alias_uri\n"
        "reader = LocalModel(alias_uri()); print(reader.load())\n"
        "print(reader.read(open('core/example.png', 'rb').read())['digits'])"
    )
    status, digits = sh(sys.executable, "-c", app, cwd=team_repo, **team.login()).splitlines()
    assert status == f"model {MODEL_NAME}@champion (version 1) from {team.url}, in process"
    assert digits == answer["digits"]


def add_user(team: Team, repo: Path, user: str, password: str, *options: str) -> str:
    """`python -m team.users` as the admin, the password on stdin."""
    result = subprocess.run(
        [sys.executable, "-m", "team.users", user, *options],
        cwd=repo,
        env=stage_env(**team.login()),
        input=password + "\n",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_failing(module: str, *args: str, cwd: Path, env: dict[str, str], stdin: str = "") -> str:
    """Run `python -m module` that must fail fast; its one line of error."""
    try:
        result = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=cwd,
            env=stage_env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=10,  # the bound: a store that cannot be used is said within 10 s
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{module} was still running after 10 s: {error.stderr}")
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def snapshot(client: mlflow.MlflowClient, repo: Path) -> tuple:
    """What a failed command must leave as it was: runs, versions, aliases, the model file."""
    runs = client.search_runs(client.get_experiment_by_name("mnist").experiment_id)
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    aliases = client.get_registered_model(MODEL_NAME).aliases
    return (
        sorted((run.info.run_id, run.info.status) for run in runs),
        sorted(version.version for version in versions),
        aliases,
        (in_clone(repo, MODEL_PATH)).stat().st_mtime_ns,
    )


FAULTS = {
    "no login": (
        lambda team: {"MLFLOW_TRACKING_URI": team.url, **team.trust()},
        "asks for a login",
    ),
    "wrong password": (
        lambda team: team.login(password="not-the-password"),
        "refused the login of user 'admin'",
    ),
    "untrusted certificate": (
        lambda team: {k: v for k, v in team.login().items() if k not in team.trust()},
        "presents a certificate this machine does not trust",
    ),
    "server down": (
        lambda team: {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"},
        "cannot reach the tracking server",
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(
    "command",
    [("pipeline.train",), ("pipeline.register",), ("pipeline.promote",), ("pipeline.promote", "1"),
     ("serving",)],
)  # fmt: skip
def test_a_store_that_cannot_be_used_is_one_line_within_10_s(
    team, team_repo, client, fault, command
):
    env, expected = FAULTS[fault][0](team), FAULTS[fault][1]
    before = snapshot(client, team_repo)
    line = run_failing(*command, cwd=team_repo, env=env)
    assert line.startswith("error: ") and expected in line
    assert env["MLFLOW_TRACKING_URI"] in line
    assert snapshot(client, team_repo) == before


def test_a_reader_browses_but_cannot_train_or_promote(team, team_repo, client):
    assert "reader may browse" in add_user(team, team_repo, "reader", "reader-secret")
    reader = team.login("reader", "reader-secret")
    listing = sh(sys.executable, "-m", "pipeline.promote", cwd=team_repo, **reader)
    assert re.search(r"^\s+1\s.*champion", listing, re.MULTILINE)

    before = snapshot(client, team_repo)
    for command in [("pipeline.promote", "1"), ("pipeline.train",)]:
        line = run_failing(*command, cwd=team_repo, env=reader)
        assert line.startswith(f"error: user 'reader' may not do this on {team.url}"), line
    assert snapshot(client, team_repo) == before


def test_an_editor_promotes(team, team_repo):
    out = add_user(team, team_repo, "editor", "editor-secret", "--editor")
    assert "editor may train, register and promote" in out
    editor = team.login("editor", "editor-secret")
    out = sh(sys.executable, "-m", "pipeline.promote", "1", cwd=team_repo, **editor)
    assert f"{MODEL_NAME}@champion is now version 1" in out

    line = run_failing(
        "team.users", "editor", cwd=team_repo, env=team.login(), stdin="long-enough-password\n"
    )
    assert line == f"error: editor is a user of {team.url} already"


def test_a_fresh_clone_pulls_the_model_instead_of_training(team_repo, tmp_path):
    remote = tmp_path / "remote"  # a shared folder; S3 or SSH work the same way (README)
    sh("dvc", "remote", "add", "--default", "team", str(remote), cwd=team_repo)
    commit(team_repo, "the team's DVC remote")
    sh("dvc", "push", cwd=team_repo)

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(team_repo), str(clone), cwd=tmp_path)
    # The README's run command, with this interpreter's environment instead of a new .venv;
    # no MNIST anywhere: a stage that tried to fetch or train would fail.
    out = sh(
        "make", "-o", ".venv/installed", "run", cwd=clone, MNIST_MIRROR=str(tmp_path / "no-mnist")
    )
    assert re.findall(r"Running stage '(\w+)'", out) == ["register"], out
    assert (in_clone(clone, MODEL_PATH)).read_bytes() == (
        in_clone(team_repo, MODEL_PATH)
    ).read_bytes()

    cloned = mlflow.MlflowClient(tracking_uri=store(clone), registry_uri=store(clone))
    [version] = cloned.search_model_versions(f"name = '{MODEL_NAME}'")
    assert cloned.get_model_version_by_alias(MODEL_NAME, "champion").version == version.version
    with serve(clone) as server:
        [answer] = read_endpoint(server.url, [EXAMPLE])
    assert len(answer["digits"]) == 2


def test_two_registers_racing_on_one_model_make_one_version(team, team_repo, client, tmp_path):
    racing = tmp_path / "racing"
    shutil.copytree(team_repo, racing)
    set_params(racing, train={"seed": 7})  # a model the registry does not have yet
    sh(sys.executable, "-m", "pipeline.train", cwd=racing, **team.login())
    registers = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline.register"],
            cwd=racing,
            env=stage_env(**team.login()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in registers]
    assert [process.returncode for process in registers] == [0, 0], outputs

    model_md5 = hashlib.md5((in_clone(racing, MODEL_PATH)).read_bytes()).hexdigest()
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert [v.tags["model_md5"] for v in versions].count(model_md5) == 1, outputs


def test_queued_experiments_all_land(team, team_repo, client):
    for seed in (11, 12, 12):  # the last two are the same model: one version for both
        sh("dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}", cwd=team_repo)
    # Not through sh(): the workers it leaves running would hold its output pipes open,
    # and reading them to the end would wait for the workers.
    subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=team_repo,
        env=stage_env(**team.login()),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    deadline = time.monotonic() + 900
    try:
        while re.search(r"Queued|Running", status := sh("dvc", "queue", "status", cwd=team_repo)):
            assert time.monotonic() < deadline, status
            time.sleep(5)
    finally:
        sh("dvc", "queue", "stop", cwd=team_repo)  # its workers stop when idle; make sure
    assert status.count("Success") == 3, status

    # Each seed's run has its parameters and test metrics (the twin of 12 may have been
    # restored from DVC's run cache: then it trained nothing and logged nothing).
    runs = client.search_runs(client.get_experiment_by_name("mnist").experiment_id)
    tested = {
        run.data.params.get("train.seed") for run in runs if "test_accuracy" in run.data.metrics
    }
    assert {"11", "12"} <= tested
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    md5s = [version.tags["model_md5"] for version in versions]
    assert len(md5s) == len(set(md5s))  # one version per distinct model
    seeds = {client.get_run(version.run_id).data.params["train.seed"] for version in versions}
    assert {"11", "12"} <= seeds


def postgres(cluster: local.Cluster, program: str, *args: str) -> None:
    """One of PostgreSQL's client programs, as the runbook runs it (docs/team.md)."""
    binary = local.INSTALLED[-1].parent / program
    result = subprocess.run(
        [str(binary), *args], env=os.environ | cluster.env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def registry(client: mlflow.MlflowClient) -> tuple:
    """Runs, versions and aliases, as they compare across servers."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=1000)
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    return (
        sorted((r.info.run_id, r.info.status, sorted(r.data.metrics.items())) for r in runs),
        sorted((v.version, v.run_id, sorted(v.tags.items())) for v in versions),
        client.get_registered_model(MODEL_NAME).aliases,
    )


def rights(url: str, user: str) -> tuple:
    """What the admin sees of a user on the server at url: admin or not, and its rights."""
    from mlflow.server.auth.client import AuthServiceClient

    auth = AuthServiceClient(url)
    experiment = mlflow.MlflowClient(url).get_experiment_by_name("mnist").experiment_id
    return (
        auth.get_user(user).is_admin,
        auth.get_user_permission(user, "experiment", experiment).permission,
        auth.get_user_permission(user, "registered_model", MODEL_NAME).permission,
    )


def test_a_backup_restores_the_whole_registry_on_a_new_cluster_and_home(
    team, team_repo, client, tmp_path, monkeypatch
):
    add_user(team, team_repo, "keeper", "keeper-secret-1", "--editor")
    if "champion" not in client.get_registered_model(MODEL_NAME).aliases:
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    # The runbook (docs/team.md): dump the database, then copy the artifacts.
    dump = tmp_path / "mlflow.dump"
    postgres(
        team.cluster, "pg_dump", "--format=custom", f"--file={dump}", f"{team.cluster.uri}/mlflow"
    )
    shutil.copytree(team.home / "artifacts", tmp_path / "home" / "artifacts")

    with local.cluster() as restored:
        postgres(restored, "createdb", f"--maintenance-db={restored.uri}/postgres", "mlflow")
        postgres(restored, "pg_restore", "--no-owner", f"--dbname={restored.uri}/mlflow", str(dump))
        with local.tracking_server(restored, tmp_path / "home") as server:
            for name, value in team.login().items():
                monkeypatch.setenv(name, value)
            copy = mlflow.MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            assert registry(copy) == registry(client)
            for user in ("admin", "keeper"):
                assert rights(server.url, user) == rights(team.url, user)
            # The users' passwords came along: the keeper logs in to the new server.
            keeper = Team(server.url, tmp_path / "home", restored).login(
                "keeper", "keeper-secret-1"
            )
            answers = []
            for login in (team.login(), keeper):
                with serve(team_repo, **login) as endpoint:
                    answers.append(read_endpoint(endpoint.url, [EXAMPLE]))
            assert answers[0] == answers[1]


def test_an_address_that_guesses_passwords_is_refused_and_no_other(team):
    """nginx counts the logins MLflow refuses, per address (team/https.py)."""
    guesses, logged_in = [], []
    for _ in range(12):
        guesses.append(ask(team, "admin", "a-guess", source="127.0.0.2"))
        logged_in.append(ask(team, "admin", ADMIN_PASSWORD))
    assert guesses == [401] * 10 + [429] * 2
    assert logged_in == [200] * 12
    # The refused address is refused whatever it sends; a guess from a third is only wrong.
    assert ask(team, "admin", ADMIN_PASSWORD, source="127.0.0.2") == 429
    assert ask(team, "admin", "a-guess", source="127.0.0.3") == 401


@pytest.mark.parametrize("end", ["SIGTERM", "nginx dies"])
def test_the_server_stops_nginx_and_mlflow_together(team, tls, tmp_path, end):
    """A second server on the same database, for this test alone."""
    import psutil

    server = local.TrackingServer(team.cluster, tmp_path / "home", tls=tls)
    server.start()
    try:
        started = psutil.Process(server.process.pid).children(recursive=True)
        assert {process.name() for process in started} >= {"mlflow", "nginx"}
        if end == "SIGTERM":
            server.process.send_signal(signal.SIGTERM)
        else:
            [master] = [
                p for p in started if p.name() == "nginx" and p.ppid() == server.process.pid
            ]
            master.kill()
        server.process.wait(timeout=90)
    finally:
        server.stop()
    left = [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == []  # uvicorn's workers and nginx's too
    last = server.log.read_text().strip().splitlines()[-1]
    if end == "SIGTERM":
        assert server.process.returncode == 143
        assert last == "stopped by SIGTERM: the MLflow server (and nginx) stopped"
    else:
        assert server.process.returncode == 1
        assert last.startswith("error: nginx stopped (exit code -9), so the server stops")


def holders(files, secrets: list[str]) -> dict[str, list[str]]:
    """The files that hold one of the secrets: path -> which, and its mode."""
    found = {}
    for path in files:
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
            text = path.read_bytes()
            if held := [secret for secret in secrets if secret.encode() in text]:
                found[str(path)] = [*held, oct(path.stat().st_mode & 0o777)]
    return found


def test_no_password_in_a_command_line_a_log_or_a_readable_file(team, team_repo):
    """Everything ran already (the module's order): training, users, the endpoint. Now
    the endpoint serves again, its model servers loading from the team server."""
    secrets = [team.cluster.password, ADMIN_PASSWORD, "reader-secret", "editor-secret"]
    secrets.append("keeper-secret-1")
    with serve(team_repo, **team.login()):
        command_lines = {}
        for process in Path("/proc").glob("[0-9]*"):
            try:
                command_lines[process.name] = (process / "cmdline").read_bytes()
            except OSError:  # it ended meanwhile
                continue
    assert len(command_lines) > 10  # this module's server, nginx, PostgreSQL, the endpoint
    for pid, line in command_lines.items():
        assert not [s for s in secrets if s.encode() in line], (pid, line)

    # Logs and settings of the server and of PostgreSQL, and what the clone that trained
    # wrote (not its code: this module's passwords are in it): only the cluster's .pgpass
    # holds a password, and only its owner may read it.
    written = sh("git", "ls-files", "--others", cwd=team_repo).splitlines()  # and ignored
    found = holders(team.home.rglob("*"), secrets)
    found |= holders(team.cluster.passfile.parent.rglob("*"), secrets)
    found |= holders((team_repo / name for name in written), secrets)
    assert found == {str(team.cluster.passfile): [team.cluster.password, "0o600"]}
