"""Serving: an OpenAI-compatible HTTP API where each request picks its own composition.

    settings.py    ServeSettings: limits, queue, deadlines, key, address
    schemas.py     request bodies (pydantic), the `composition` extension
    engine.py      base model + every module of the directory in one fused ComposedModel;
                   a validated request → `Sequence`s (rows and logit-sum coefficients)
    scheduler.py   one thread that batches queued jobs, whatever their compositions, and decodes them
    responses.py   OpenAI response bodies and server-sent-event chunks
    app.py         FastAPI routes, errors, API key; `create_app`
    judging.py     the attribute judges' scores for the playground
    static/        the playground page (plain HTML/JS)
    loadtest.py    `run_load_test`, `serve_in_background`, `python -m loracompose.serve.loadtest`
    cli.py         `loracompose serve`, `loracompose serve-bench`
"""
