"""The playground's judge scores: the built-in sentiment panel behind POST /v1/judge."""

from __future__ import annotations

import time

import pytest

httpx = pytest.importorskip("httpx")

from serve_helpers import make_modules  # noqa: E402
from loracompose.errors import LoraComposeError  # noqa: E402
from loracompose.evaluate.panel import JudgeSettings  # noqa: E402
from loracompose.serve.judging import JudgeService, judged_attributes  # noqa: E402
from loracompose.serve.background import serve_in_background  # noqa: E402

# The small panel the evaluation tests train (cached on disk, so usually already there).
TEST_SETTINGS = JudgeSettings(embed_per_label=80, ngram_per_label=1500, test_per_label=100)


def test_judged_attributes():
    assert judged_attributes("auto", ["topic", None, "sentiment", "formality"]) == ["sentiment", "topic"]
    assert judged_attributes("none", ["sentiment"]) == []
    assert judged_attributes("topic", []) == ["topic"]
    with pytest.raises(LoraComposeError, match="no built-in judges for attribute 'colour'; accepted: sentiment"):
        judged_attributes("sentiment,colour", [])


def test_judge_route_scores_with_the_sentiment_panel(tiny_model_dir, tmp_path):
    modules_dir = make_modules(tiny_model_dir, tmp_path)
    service = JudgeService(["sentiment"], TEST_SETTINGS)
    with serve_in_background(str(tiny_model_dir), str(modules_dir), judge_service=service) as url:
        deadline = time.monotonic() + 600
        while service.status()["pending"] and time.monotonic() < deadline:
            time.sleep(0.2)
        good = httpx.post(f"{url}/v1/judge", json={"text": "A wonderful, moving film. I loved every minute."},
                          timeout=120).json()
        bad = httpx.post(f"{url}/v1/judge", json={"text": "A dreadful, boring mess. I hated it."}, timeout=120).json()
        too_long = httpx.post(f"{url}/v1/judge", json={"text": "x" * 20_001})
    assert good["ready"] == ["sentiment"] and good["failed"] == {}
    assert good["scores"]["sentiment"]["vote"] == "positive" and bad["scores"]["sentiment"]["vote"] == "negative"
    probabilities = good["scores"]["sentiment"]["probabilities"]
    assert set(probabilities) == {"negative", "positive"} and abs(sum(probabilities.values()) - 1) < 1e-3
    assert too_long.status_code == 400 and "text: String should have at most 20000 characters" in too_long.text
