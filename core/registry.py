"""The registered model: its name, the aliases clients load, and whether a version is there
and whole before anything starts on it.

Clients load `models:/<name>@champion`; moving the alias is how a version goes live
(pipeline/promote.py). Every look-up that finds nothing raises ModelMissing with the
command that fixes it.
"""

import os
from pathlib import Path

from core.errors import ModelMissing
from core.params import load_params
from core.store import tracking_uri

CHAMPION, CHALLENGER = "champion", "challenger"


def model_name() -> str:
    """The registered model's name: mlflow.model_name of params.yaml."""
    return load_params()["mlflow"]["model_name"]


def alias_uri(alias: str = CHAMPION) -> str:
    """The registry URI that clients load by default: models:/<name>@champion."""
    return f"models:/{model_name()}@{alias}"


def parse(uri: str) -> tuple[str, str, str]:
    """models:/NAME@ALIAS -> (NAME, ALIAS, ''); models:/NAME/3 -> (NAME, '', '3')."""
    name, _, alias = uri.removeprefix("models:/").partition("@")
    name, _, version = name.partition("/")
    return name, alias, version


def describe_model(uri: str) -> str:
    """'mnist-cnn@champion (version 3)' for a registry URI that names a version.

    Raises ModelMissing with the command that fixes it when the URI names nothing.
    """
    version = registered_version(uri)
    if version is None:
        return uri
    name, alias, _ = parse(uri)
    return f"{name}@{alias} (version {version})" if alias else f"{name} version {version}"


def registered_version(uri: str) -> str | None:
    """The registry version that a models:/ URI names ('3'); None for a model folder.

    Raises ModelMissing with the command that fixes it when the URI names nothing.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return None
    name, alias, version = parse(uri)
    client = mlflow.MlflowClient()
    try:
        if alias:
            return str(client.get_model_version_by_alias(name, alias).version)
        return str(client.get_model_version(name, version).version)
    except MlflowException:
        raise ModelMissing(
            f"{uri} does not exist in {tracking_uri()}: run `make run` to train and register "
            "a model, or `python -m pipeline.promote VERSION` to choose one"
        ) from None


def check_model(uri: str) -> None:
    """Raise ModelMissing naming the version and the fix when a registry URI names nothing,
    or a model whose files are missing or corrupt (someone deleted mlruns/...): said
    here in one line, before a server or the app fails on them with a traceback."""
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    description = describe_model(uri)
    if not uri.startswith("models:/"):
        return
    # A check, not a download the user asked for: no progress bars (unless they want them).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as folder:
        try:
            files = Path(mlflow.artifacts.download_artifacts(uri, dst_path=folder))
        except (MlflowException, OSError) as error:
            problem = f"its files cannot be read ({str(error).splitlines()[0][:200]})"
        else:
            problem = model_files_problem(files)
    if problem is None:
        return
    raise ModelMissing(
        f"{description} cannot be loaded: {problem}; make another version the champion "
        "with `python -m pipeline.promote VERSION`"
    )


def model_files_problem(files: Path) -> str | None:
    """What is wrong with a downloaded model folder, or None when it is whole."""
    import zipfile

    networks = list(files.glob("artifacts/*.keras"))
    if not (files / "MLmodel").is_file() or not networks:
        return "its files are incomplete (MLmodel or the network is missing)"
    for network in sorted(networks):  # the digit network and the line reader
        try:  # a .keras file is a zip archive: its checksums say whether it is whole
            with zipfile.ZipFile(network) as archive:
                whole = archive.testzip() is None
        except zipfile.BadZipFile:
            whole = False
        if not whole:
            return f"its network file {network.name} is corrupt"
    # The export the model runs (versions before pipeline/export.py have none): whole
    # when ONNX Runtime reads it.
    for export in files.glob("artifacts/*.onnx"):
        import onnxruntime

        try:
            onnxruntime.InferenceSession(export, providers=["CPUExecutionProvider"])
        except Exception:  # ONNX Runtime's errors share no base class of their own
            return f"its network file {export.name} is corrupt"
    return None
