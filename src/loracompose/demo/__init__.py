"""The quick-start demo: steer the packaged SmolLM2 with its starter modules, judge it, write a report."""

from loracompose.demo.settings import CONDITIONS, DemoCondition, DemoSettings  # noqa: F401


def run_demo(*args, **kwargs):  # noqa: D103  (torch and transformers load only when the demo runs)
    from loracompose.demo.run import run_demo as run

    return run(*args, **kwargs)
