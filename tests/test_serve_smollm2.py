"""`loracompose serve` as a process on the real SmolLM2, answering the official openai client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

openai = pytest.importorskip("openai")

from loracompose.testing import random_adapter  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_on_smollm2(smollm2_dir, tmp_path):
    module = random_adapter(smollm2_dir, tmp_path / "modules" / "style@test", seed=7, targets=("q_proj", "v_proj"))
    (module / "loracompose.json").write_text(json.dumps({"name": "style@test", "attribute": "style",
                                                         "label": "test"}))
    port = _free_port()
    env = {**os.environ, "LORACOMPOSE_API_KEY": "from-env"}
    server = subprocess.Popen([sys.executable, "-m", "loracompose.cli", "serve", "--model", "smollm2-135m",
                               "--modules", str(tmp_path / "modules"), "--port", str(port), "--judges", "none"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="from-env", max_retries=0)
        deadline = time.monotonic() + 120
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
        assert [m.id for m in models.data] == ["smollm2-135m", "style@test"]
        completion = client.completions.create(model="smollm2-135m", prompt="The movie was", max_tokens=12, seed=1,
                                               extra_body={"composition": {"modules": {"style@test": 0.5}}})
        assert len(completion.choices[0].text.split()) >= 3
        chat = client.chat.completions.create(model="smollm2-135m", max_tokens=12, seed=1,
                                              messages=[{"role": "user", "content": "Say hello."}])
        assert chat.choices[0].message.content.strip()
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="nope", max_retries=0).models.list()
        # Bound to loopback only: the port is not listening on another local address of this machine.
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout \
            if os.path.exists("/usr/bin/ss") or os.path.exists("/bin/ss") else ""
        if listening:
            assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
    finally:
        server.terminate()
        server.wait(timeout=30)
