"""Serving: an OpenAI-compatible HTTP API where each request picks its own composition.

    settings.py    ServeSettings: limits, queue, deadlines, key, address
    schemas.py     request bodies (pydantic), the `composition` extension
    engine.py      base model + every module of the directory in one fused ComposedModel;
                   a validated request → `Sequence`s (rows and logit-sum coefficients)
    scheduler.py   one thread that decodes every running request step by step; queued ones join the
                   running batch at the next step (continuous batching), whatever their compositions
    responses.py   OpenAI response bodies and server-sent-event chunks
    app.py         `create_app`: wires the parts below into one FastAPI application
    guard.py       requests refused on their headers alone: host (DNS rebinding), API key, body size
    errors.py      OpenAI-shaped 4xx bodies (validation errors as one line)
    routes.py      the routes (an APIRouter reading app.state)
    judging.py     the attribute judges' scores for the playground
    static/        the playground page (plain HTML/JS)
    background.py  `serve_in_background`: a server on a free loopback port, in a thread (tests, benchmarks)
    loadtest.py    `run_load_test`: a bounded load test's client side
    cli.py         `loracompose serve`, `loracompose serve-bench`
"""
