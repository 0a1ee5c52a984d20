"""The FastAPI application: OpenAI-compatible completions and chat, models, health, judge, playground.

`create_app` wires the parts, each in its own module: `guard` (requests refused on their headers: host,
API key, body size), `errors` (OpenAI-shaped 4xx bodies), `routes` (the routes), `scheduler` (batching),
`engine` (requests → sequences), `judging` (the attribute judges).
"""

from __future__ import annotations

from fastapi import FastAPI

from loracompose import __version__
from loracompose.serve.engine import Engine
from loracompose.serve.errors import install_error_handlers
from loracompose.serve.guard import Guard, header_refusal
from loracompose.serve.judging import JudgeService, judged_attributes
from loracompose.serve.routes import router
from loracompose.serve.scheduler import Scheduler


def create_app(engine: Engine, api_key: str | None = None, judges: JudgeService | None = None) -> FastAPI:
    app = FastAPI(title="loracompose", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.scheduler = engine, Scheduler(engine)
    app.state.admin_key = engine.settings.admin_key or api_key  # the /admin routes' key; none: they are off
    app.state.judges = judges or JudgeService(
        judged_attributes(engine.settings.judges, [m.info.attribute for m in engine.bank.modules]))
    app.router.add_event_handler("shutdown", app.state.scheduler.stop)
    # A plain ASGI middleware: Starlette's BaseHTTPMiddleware would hide a client's disconnect from the routes.
    app.add_middleware(Guard, refusal=header_refusal(engine.settings, api_key))
    install_error_handlers(app)
    app.include_router(router)
    return app
