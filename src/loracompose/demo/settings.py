"""What the demo runs: its conditions (each a `--steer` target and what it is judged for) and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from loracompose.steer import DEFAULT_STRENGTH


@dataclass(frozen=True)
class DemoCondition:
    name: str
    steer: str | None  # attribute=value,... or None for the base
    judged: dict[str, str]  # the targets its text is judged for
    prompted: str | None = None  # a sentiment the base is *asked* for through its chat template (no module)


CONDITIONS = [
    DemoCondition("base", None, {}),
    DemoCondition("positive", "sentiment=positive", {"sentiment": "positive"}),
    DemoCondition("negative", "sentiment=negative", {"sentiment": "negative"}),
    DemoCondition("sport", "topic=sport", {"topic": "sport"}),
    DemoCondition("positive + sport", "sentiment=positive,topic=sport", {"sentiment": "positive", "topic": "sport"}),
    # What a user would try first: the instruction, to the same model (baselines/prompting.py).
    DemoCondition("prompted positive", None, {"sentiment": "positive"}, prompted="positive"),
    DemoCondition("prompted negative", None, {"sentiment": "negative"}, prompted="negative"),
]


@dataclass(frozen=True)
class DemoSettings:
    model: str = "smollm2-135m"
    modules: str | None = None  # a modules directory; None: the base's starter modules
    prompts: str = "pplm"
    seeds: tuple[int, ...] = (1, 2)
    samples: int = 2
    max_new_tokens: int = 40
    strength: float = DEFAULT_STRENGTH
    strategy: str = "contrast"
    reference: str | None = None  # perplexity model (None: skipped; distinct-2 is always reported)
    resamples: int = 2000
    judges: object = None  # JudgeSettings of the built-in panels (None: the defaults)
