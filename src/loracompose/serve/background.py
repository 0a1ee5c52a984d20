"""A server started in-process on a free loopback port, for tests, benchmarks and `serve-bench`.

    with serve_in_background(model_spec, modules_dir, **settings) as url: ...
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from ipaddress import ip_address
from urllib.parse import urlparse

from loracompose.errors import LoraComposeError


def check_loopback(base_url: str) -> None:
    host = urlparse(base_url).hostname or ""
    try:
        loopback = host == "localhost" or ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LoraComposeError(f"the load test only targets loopback addresses (127.0.0.0/8, ::1, localhost); "
                               f"got '{host}'")


@contextlib.contextmanager
def serve_in_background(model_spec: str, modules_dir: str | None, quantize: str | None = None,
                        judge_service=None, **settings):
    """Load the model, serve it on a free loopback port in a thread, yield the base URL; stop on exit.

    settings: `ServeSettings` fields; judge_service: a `judging.JudgeService` (default: from settings.judges).
    """
    import uvicorn

    from loracompose.serve.app import create_app
    from loracompose.serve.engine import Engine
    from loracompose.serve.settings import ServeSettings

    config = ServeSettings(**{"host": "127.0.0.1", "port": 0, **settings})
    check_loopback(f"http://{config.host}")
    engine = Engine.load(model_spec, modules_dir, config, quantize=quantize)
    app = create_app(engine, config.api_key, judge_service)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((config.host, config.port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="loracompose-uvicorn",
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise LoraComposeError("the in-process server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{config.host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        app.state.scheduler.stop()
        sock.close()
