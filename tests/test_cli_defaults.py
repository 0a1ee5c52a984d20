"""CLI flags take their defaults from the settings dataclasses: a default changed in one place only fails here.

A flag either has no default of its own (None: the dataclass default applies) or the
dataclass's default. Found drifted once: `serve --judges` was `auto`, ServeSettings.judges `none`.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

import pytest

from loracompose.cli import build_parser
from loracompose.decoding import SamplingConfig
from loracompose.experiments.spec import GenerateSettings, TrainSettings
from loracompose.serve.settings import ServeSettings
from loracompose.train import TrainConfig

# (subcommand, dataclass, flag dest → field where the names differ, fewest flags the check must cover)
CASES = [
    ("train", TrainConfig, {}, 20),
    ("generate", SamplingConfig, {}, 5),
    ("serve", ServeSettings, {"batch_window": "batch_window_s", "request_timeout": "request_timeout_s",
                              "allowed_host": "allowed_hosts"}, 14),
]


def _subcommand(name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices[name]


def _as_setting(value):
    return None if value == "none" else value  # the CLI spells a None setting "none" (--quantize none)


@pytest.mark.parametrize("command, settings, renamed, fewest", CASES, ids=[c[0] for c in CASES])
def test_cli_defaults_are_the_dataclass_defaults(command, settings, renamed, fewest):
    defaults = {f.name: f.default if f.default is not MISSING else
                (f.default_factory() if f.default_factory is not MISSING else MISSING) for f in fields(settings)}
    checked = []
    for action in _subcommand(command)._actions:
        name = renamed.get(action.dest, action.dest)
        if name not in defaults or defaults[name] is MISSING or action.default is None:
            continue
        assert _as_setting(action.default) == defaults[name], \
            f"{command} --{action.dest.replace('_', '-')} defaults to {action.default!r}, " \
            f"{settings.__name__}.{name} to {defaults[name]!r}"
        checked.append(name)
    flags = [a.dest for a in _subcommand(command)._actions if renamed.get(a.dest, a.dest) in defaults]
    assert len(flags) >= fewest, f"only {flags} of {command}'s flags map onto {settings.__name__}"


def test_experiment_train_settings_are_train_config_less_the_grid():
    train = {f.name: f.default for f in fields(TrainConfig)}
    own = {f.name: f.default for f in fields(TrainSettings)}
    assert own == {k: v for k, v in train.items() if k not in ("model", "datasets", "label", "mixing", "attribute")}
    assert GenerateSettings().sampling == SamplingConfig()
