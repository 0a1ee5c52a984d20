"""Modules added and removed while the server runs: POST/DELETE /admin/modules."""

from __future__ import annotations

import json
import shutil
import threading
import time

import httpx

from loracompose.testing import random_adapter as make_adapter
from serve_helpers import MODULES, make_modules
from loracompose.serve.background import serve_in_background

POS, SPORT = list(MODULES)
ADMIN = {"Authorization": "Bearer root"}


def _module(tiny_model_dir, directory, name, seed):
    make_adapter(tiny_model_dir, directory, seed=seed)
    (directory / "loracompose.json").write_text(json.dumps(
        {"format": "loracompose-module/1", "name": name, "attribute": "topic", "label": "tech",
         "datasets": [{"name": "tiny"}]}))


def _while_running(url, body, action):
    """Send `body`, call `action()` once it is decoding, return (its response, action's result)."""
    answer = {}
    worker = threading.Thread(target=lambda: answer.setdefault(
        "r", httpx.post(f"{url}/v1/completions", json=body, timeout=120)))
    worker.start()
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/health").json()["running_jobs"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    result = action()
    running = worker.is_alive()
    worker.join()
    assert running, "the request ended before the module change: the test did not test anything"
    return answer["r"], result


def test_modules_are_added_and_removed_without_a_restart(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path / "modules")
    name = tiny_model_dir.name
    with serve_in_background(str(tiny_model_dir), str(modules_dir), admin_key="root", max_tokens_cap=200,
                             judges="none") as url:
        def ids():
            return [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]]

        long = {"model": name, "prompt": "The movie", "max_tokens": 200, "seed": 5, "n": 2,
                "composition": {"modules": {POS: 1.0, SPORT: -0.5}}}
        solo = httpx.post(f"{url}/v1/completions", json=long, timeout=120).json()["choices"]

        # Add a module while a request decodes: it is fused in between two steps; the request is unchanged.
        _module(tiny_model_dir, modules_dir / "tech-dir", "tech@tiny", seed=35)
        during, added = _while_running(url, long, lambda: httpx.post(
            f"{url}/admin/modules", json={"directory": "tech-dir"}, headers=ADMIN, timeout=60))
        assert added.status_code == 201 and added.json()["id"] == "tech@tiny", added.text
        assert during.json()["choices"] == solo
        assert ids() == [name, POS, SPORT, "tech@tiny"]
        tech = {"model": name, "prompt": "The lake", "max_tokens": 6, "seed": 1,
                "composition": {"modules": {"tech@tiny": 1.0}}}
        with_tech = httpx.post(f"{url}/v1/completions", json=tech, timeout=60)
        base = httpx.post(f"{url}/v1/completions", json={**tech, "composition": None}, timeout=60)
        assert with_tech.status_code == 200 and with_tech.json()["choices"][0]["text"] != \
            base.json()["choices"][0]["text"]

        # Remove a module a running request uses: it finishes with it; new requests naming it get 404.
        def remove():
            response = httpx.delete(f"{url}/admin/modules/{POS}", headers=ADMIN, timeout=60)
            refused = httpx.post(f"{url}/v1/completions", json=long, timeout=60)
            return response, refused

        during, (removed, refused) = _while_running(url, long, remove)
        assert removed.status_code == 200 and removed.json()["status"] == "draining", removed.text
        assert refused.status_code == 404 and f"unknown module '{POS}' (it was removed)" in refused.text
        assert during.json()["choices"] == solo
        assert ids() == [name, SPORT, "tech@tiny"]
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["modules"] != 2:  # out of the fused layers once unused
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert httpx.post(f"{url}/v1/completions", json=tech, timeout=60).json()["choices"] == \
            with_tech.json()["choices"]  # the columns moved; the same weights, the same text
        metrics = httpx.get(f"{url}/metrics").text
        assert "loracompose_modules 2.0" in metrics

        # Bad input: a 4xx naming the problem, nothing changes.
        (modules_dir / "broken").mkdir()
        shutil.copy(modules_dir / "tech-dir" / "adapter_config.json", modules_dir / "broken")
        (modules_dir / "broken" / "adapter_model.safetensors").write_bytes(b"\x00" * 12)
        (modules_dir / "broken" / "loracompose.json").write_text(json.dumps(
            {"format": "loracompose-module/1", "name": "broken@tiny"}))
        cases = [
            (httpx.post, "/admin/modules", {"directory": "broken"}, {}, 401, "missing or wrong admin key"),
            (httpx.post, "/admin/modules", {"directory": "broken"}, {"Authorization": "Bearer nope"}, 401,
             "missing or wrong admin key"),
            (httpx.delete, f"/admin/modules/{SPORT}", None, {}, 401, "missing or wrong admin key"),
            (httpx.post, "/admin/modules", {"directory": "broken"}, ADMIN, 422,
             "module 'broken@tiny' is refused: module 'broken@tiny': adapter_model.safetensors cannot be read"),
            (httpx.post, "/admin/modules", {"directory": "../modules"}, ADMIN, 400, "not a path"),
            (httpx.post, "/admin/modules", {"directory": "nowhere"}, ADMIN, 404, "no module directory 'nowhere'"),
            (httpx.post, "/admin/modules", {"directory": "tech-dir"}, ADMIN, 409, "'tech@tiny' is already served"),
            (httpx.delete, f"/admin/modules/{POS}", None, ADMIN, 404, f"unknown module '{POS}'"),
        ]
        for method, path, body, headers, status, message in cases:
            kwargs = {"json": body} if body is not None else {}
            response = method(f"{url}{path}", headers=headers, timeout=60, **kwargs)
            assert response.status_code == status and message in response.json()["error"]["message"], response.text
        assert ids() == [name, SPORT, "tech@tiny"]

        # Added back once gone; a removal with nothing running is immediate.
        assert httpx.post(f"{url}/admin/modules", json={"directory": POS}, headers=ADMIN).status_code == 201
        response = httpx.delete(f"{url}/admin/modules/tech@tiny", headers=ADMIN)
        assert response.json()["status"] == "removed" and ids() == [name, SPORT, POS]


def test_admin_routes_are_off_without_a_key(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path / "modules")
    with serve_in_background(str(tiny_model_dir), str(modules_dir), judges="none") as url:
        response = httpx.post(f"{url}/admin/modules", json={"directory": POS})
        assert response.status_code == 403 and "start the server with --admin-key" in response.text
    with serve_in_background(str(tiny_model_dir), str(modules_dir), api_key="k", judges="none") as url:
        # The API key opens the admin routes where no admin key is set; the API still needs it too.
        response = httpx.delete(f"{url}/admin/modules/{SPORT}", headers={"Authorization": "Bearer k"})
        assert response.status_code == 200 and response.json()["status"] == "removed"
        assert httpx.get(f"{url}/v1/models").status_code == 401
