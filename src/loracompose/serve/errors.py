"""Client errors as OpenAI-shaped 4xx bodies: pydantic's validation errors as one line, `ApiError`s, and
Starlette's own (unknown route, wrong method, unparsable body).

`{"error": {"message", "type", "param", "code"}}` whose message names the problem and what is accepted;
validation errors are 400 (not FastAPI's 422, as OpenAI does).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loracompose.serve.engine import ApiError, shown
from loracompose.serve.responses import error_body


def error_response(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return error_response(400, message, param)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        path = shown(request.url.path)
        message = {400: "the request body could not be parsed as JSON (invalid UTF-8, or nested too deeply)",
                   404: f"no route {path}; routes: /v1/completions, /v1/chat/completions, "
                        "/v1/models, /v1/judge, /metrics, /admin/modules, /health, /",
                   405: f"method {shown(request.method)} is not allowed on {path}"}.get(exc.status_code,
                                                                                       str(exc.detail))
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))
