"""Serve the registered model over HTTP with `mlflow models serve`.

    python -m serving                                   # the champion, port 5001
    python -m serving --model-uri models:/mnist-cnn/3 --port 5002
    python -m serving --workers 2                       # two processes, one model each

The champion is `models:/<mlflow.model_name of params.yaml>@champion`. Prints the URL once
the endpoint answers /ping; Ctrl+C stops it.
"""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-uri", help="a registry URI or a model folder (the champion)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes, each loading the model (1)",
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, not {args.workers}")

    from core.errors import UserError
    from core.registry import alias_uri, check_model
    from core.store import use_store
    from serving import server
    from serving.client import wait_until_ready

    model_uri = args.model_uri or alias_uri()
    use_store()
    check_model(model_uri)  # fail here, clearly, not inside MLflow
    process = server.start(model_uri, args.host, args.port, args.workers)
    url = f"http://{args.host}:{args.port}"
    try:  # the server stops with us: on Ctrl+C, on SIGTERM, and on an error
        wait_until_ready(url, running=lambda: process.poll() is None)
        print(f"serving {model_uri} at {url}/invocations", flush=True)
        code = process.wait()
        raise UserError(f"the model server stopped by itself (exit {code})")
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    from core.errors import command

    command(main, left_whole="the model server is stopped")
