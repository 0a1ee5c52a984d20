"""The HTTP routes: OpenAI-compatible completions and chat (streamed or not), models, health, judge,
the playground. They read the engine, scheduler and judges from `request.app.state`."""

from __future__ import annotations

import asyncio
import time
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from loracompose.serve import modules as hot_modules
from loracompose.serve.engine import ApiError
from loracompose.serve.errors import error_response
from loracompose.serve.guard import bearer_matches
from loracompose.serve.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from loracompose.serve.responses import Responder, sse_error
from loracompose.serve.scheduler import Job, QueueFull
from loracompose.serve.schemas import ChatRequest, CompletionRequest, JudgeRequest, ModuleDirectory

DISCONNECT_POLL_S = 0.1  # how often a non-streamed request checks that its client is still there
STATIC = resources.files("loracompose.serve") / "static"

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    engine, scheduler = request.app.state.engine, request.app.state.scheduler
    return {"status": "ok", "model": engine.model_name, "modules": len(engine.bank),
            # names only: /health needs no key, and the messages (in the server log) carry paths
            "refused_modules": sorted(engine.refused), **scheduler.snapshot()}


@router.get("/metrics")
async def metrics(request: Request):
    """Prometheus' text format (serve/metrics.py lists the series); behind the API key like the API."""
    return Response(request.app.state.scheduler.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)


def _admin(request: Request) -> None:
    """Refuse an /admin request without the admin key (the API key where no admin key is set)."""
    key = request.app.state.admin_key
    if not key:
        raise ApiError(403, "the /admin routes are off: start the server with --admin-key (or --api-key) to "
                            "add and remove modules at run time")
    if not bearer_matches(request, key):
        raise ApiError(401, "missing or wrong admin key; send 'Authorization: Bearer <admin key>' (--admin-key, "
                            "else --api-key)", headers={"WWW-Authenticate": "Bearer"})


@router.post("/admin/modules", status_code=201)
def add_module(body: ModuleDirectory, request: Request):  # sync: reading and checking a module is CPU and disk
    """Load the module in a directory under --modules, checked as at start-up; in-flight requests go on."""
    _admin(request)
    return hot_modules.add(request.app.state.engine, request.app.state.scheduler, body.directory)


@router.delete("/admin/modules/{name:path}")
def remove_module(name: str, request: Request):
    """Stop serving a module: new requests naming it get 404; accepted ones finish with it."""
    _admin(request)
    return hot_modules.remove(request.app.state.engine, request.app.state.scheduler, name)


@router.get("/v1/models")
async def models(request: Request):
    return {"object": "list", "data": request.app.state.engine.describe()}


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request):
    return await _generate(request, body, chat=False)


@router.post("/v1/chat/completions")
async def chat(body: ChatRequest, request: Request):
    return await _generate(request, body, chat=True)


@router.post("/v1/judge")
def judge(body: JudgeRequest, request: Request):  # sync: runs in the thread pool (MiniLM is CPU work)
    return request.app.state.judges.score(body.text)


@router.get("/", response_class=HTMLResponse)
async def playground():
    return HTMLResponse((STATIC / "playground.html").read_text())


@router.get("/playground.js")
async def playground_js():
    return Response((STATIC / "playground.js").read_text(), media_type="text/javascript")


async def _generate(request: Request, body, chat: bool):
    engine, scheduler = request.app.state.engine, request.app.state.scheduler
    settings = engine.settings
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
        scheduler.submit(job)
    except QueueFull as full:
        return error_response(429, f"the server is busy ({settings.max_queue} requests queued); retry in "
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
                return error_response(*payload)
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
