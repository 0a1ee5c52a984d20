"""FastAPI routes: OpenAI-compatible completions and chat, models, health, judge, playground.

Every client error is a 4xx with one OpenAI-shaped body
`{"error": {"message", "type", "param", "code"}}` whose message names the problem
and what is accepted; validation errors are 400 (not FastAPI's 422, as OpenAI
does). With an API key set, every route but /health and the static playground
page needs `Authorization: Bearer <key>` (the page holds no data; it sends the key
the user types on each API call). Without one, only requests whose Host header
names loopback, the bound host or an --allowed-host are answered (403 otherwise),
so a web page cannot reach a local server through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from loracompose import __version__
from loracompose.serve.engine import ApiError, Engine, shown
from loracompose.serve.judging import JudgeService, judged_attributes
from loracompose.serve.responses import Responder, error_body, sse_error
from loracompose.serve.scheduler import Job, QueueFull, Scheduler
from loracompose.serve.schemas import ChatRequest, CompletionRequest, JudgeRequest

log = logging.getLogger(__name__)
OPEN_PATHS = {"/health", "/", "/playground.js"}
DISCONNECT_POLL_S = 0.1  # how often a non-streamed request checks that its client is still there


def _error(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


_UNIONS = {"prompt": "a string or a list of strings", "stop": "a string or a list of up to 4 strings",
           "content": "a string or a list of {\"type\": \"text\", \"text\": ...} parts"}


def _where(error: dict) -> list[str]:
    """The field path, without 'body' and pydantic's union tags ('str', 'list[str]', 'function-after[...]')."""
    tags = ("str", "int", "float", "bool", "list", "dict")
    return [str(p) for p in error.get("loc", ()) if p != "body" and not (isinstance(p, str) and (
        p in tags or "[" in p))]


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One line from pydantic's errors: the first problem, where it is, and what is accepted."""
    errors = exc.errors()
    first = errors[0]
    kind, loc = first.get("type", ""), _where(first)
    where = ".".join(loc)
    raw = [str(p) for p in first.get("loc", ())]
    union = next((i for i, p in enumerate(raw) if p in _UNIONS and i + 1 < len(raw) and
                  ("[" in raw[i + 1] or raw[i + 1] == "str")), None)
    if union is not None:  # a union field (prompt, content, stop): say what it takes as a whole
        where = ".".join(_where({"loc": first["loc"][: union + 1]}))
        return f"{where}: expected {_UNIONS[raw[union]]}", where
    if kind == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}", None
    if not loc and kind in ("model_attributes_type", "dict_type", "model_type", "missing"):
        return "the request body must be a JSON object (Content-Type: application/json)", None
    if kind == "missing":
        return f"field '{where}' is required", where
    where = shown(where, 120)  # field names are the client's own keys: bounded, encodable
    if kind == "extra_forbidden":
        return f"unknown field '{where}'; see the OpenAI API and the 'composition' extension for accepted fields", \
            where
    message = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    got = "" if kind.startswith("value_error") or isinstance(got, dict) else f" (got {shown(repr(got))})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return (f"{where}: {message}{got}{more}" if where else f"{message}{more}"), where or None


def _allowed_hosts(settings) -> set[str]:
    hosts = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in settings.allowed_hosts)}
    if settings.host not in ("0.0.0.0", "::", ""):
        hosts.add(settings.host.lower())
    return hosts


def _host_allowed(header: str | None, hosts: set[str]) -> bool:
    """Whether a Host header ('name', 'name:port', '[::1]:port') names an allowed host; none at all is allowed."""
    if header is None:
        return True  # HTTP/1.0 clients; a browser always sends Host
    name = header.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in hosts or name.startswith("127.") and name.replace(".", "").isdigit()


class _Guard:
    """ASGI middleware: answer a request that `refusal` refuses on its headers; pass the rest on."""

    def __init__(self, app, refusal):
        self.app, self.refusal = app, refusal

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            refused = self.refusal(Request(scope))
            if refused is not None:
                return await refused(scope, receive, send)
        await self.app(scope, receive, send)


def create_app(engine: Engine, api_key: str | None = None, judges: JudgeService | None = None) -> FastAPI:
    settings = engine.settings
    app = FastAPI(title="loracompose", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine, app.state.scheduler = engine, Scheduler(engine)
    app.state.judges = judges or JudgeService(
        judged_attributes(settings.judges, [m.info.attribute for m in engine.bank.modules]))
    app.router.add_event_handler("shutdown", app.state.scheduler.stop)
    static = resources.files("loracompose.serve") / "static"

    hosts = _allowed_hosts(settings)

    def refusal(request: Request) -> JSONResponse | None:
        """The answer to a request refused on its headers alone, or None."""
        if not api_key and not _host_allowed(request.headers.get("host"), hosts):
            # Without a key, a page in the user's browser could reach a loopback server through a DNS name
            # it controls (DNS rebinding); the Host header still carries that name.
            return _error(403, f"host '{shown(request.headers.get('host'))}' is not served: without an API key "
                               f"this server answers only {', '.join(sorted(hosts))} (and 127.0.0.0/8); add names "
                               "with --allowed-host, or set --api-key")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return _error(413, f"the request body is larger than {settings.max_body_bytes} bytes")
        if request.method == "POST" and length is None:
            return _error(411, "send the request body with a Content-Length header")
        if api_key and request.url.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
                return _error(401, "missing or wrong API key; send 'Authorization: Bearer <key>'",
                              headers={"WWW-Authenticate": "Bearer"})
        return None

    # A plain ASGI middleware: Starlette's BaseHTTPMiddleware would hide a client's disconnect from the routes.
    app.add_middleware(_Guard, refusal=refusal)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return _error(400, message, param)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        path = shown(request.url.path)
        message = {400: "the request body could not be parsed as JSON (invalid UTF-8, or nested too deeply)",
                   404: f"no route {path}; routes: /v1/completions, /v1/chat/completions, "
                        "/v1/models, /v1/judge, /health, /",
                   405: f"method {shown(request.method)} is not allowed on {path}"}.get(exc.status_code,
                                                                                       str(exc.detail))
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": engine.model_name, "modules": len(engine.bank),
                # names only: /health needs no key, and the messages (in the server log) carry paths
                "refused_modules": sorted(engine.refused), **app.state.scheduler.snapshot()}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": engine.describe()}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        return await _generate(request, body, chat=False)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        return await _generate(request, body, chat=True)

    @app.post("/v1/judge")
    def judge(body: JudgeRequest):  # sync: runs in the thread pool (MiniLM is CPU work)
        return app.state.judges.score(body.text)

    @app.get("/", response_class=HTMLResponse)
    async def playground():
        return HTMLResponse((static / "playground.html").read_text())

    @app.get("/playground.js")
    async def playground_js():
        return Response((static / "playground.js").read_text(), media_type="text/javascript")

    async def _generate(request: Request, body, chat: bool):
        plan = await run_in_threadpool(engine.plan, body)  # tokenising is CPU work: off the event loop
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def emit(kind, payload):  # called from the scheduler thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, (kind, payload))
            except RuntimeError:  # the event loop is closed: the server is shutting down
                pass

        job = Job(plan, emit, time.monotonic() + settings.request_timeout_s, stream=body.stream)
        try:
            app.state.scheduler.submit(job)
        except QueueFull as full:
            return _error(429, f"the server is busy ({settings.max_queue} requests queued); retry in "
                               f"{full.retry_after} s", headers={"Retry-After": str(full.retry_after)})
        responder = Responder(chat, body.model, plan.composition)
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_stream(job, events, responder, usage), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache"})
        waiting = asyncio.ensure_future(events.get())
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=DISCONNECT_POLL_S)
                if not done:
                    if await request.is_disconnected():  # a non-streamed client hung up: free its rows now
                        return Response(status_code=499)
                    continue
                kind, payload = waiting.result()
                if kind == "done":
                    return responder.body(job)
                if kind == "error":
                    return _error(*payload)
                waiting = asyncio.ensure_future(events.get())
        finally:
            waiting.cancel()
            job.cancelled = True  # the client went away (or it is answered: then this changes nothing)

    async def _stream(job: Job, events: asyncio.Queue, responder: Responder, usage: bool):
        try:
            yield responder.opening(job)
            while True:
                kind, payload = await events.get()
                if kind == "delta":
                    yield responder.delta(job, payload)
                elif kind == "done":
                    yield responder.closing(job, usage)
                    return
                else:
                    yield sse_error(*payload)
                    return
        finally:
            job.cancelled = True

    return app
