"""`loracompose demo`: the quick start's steering demo."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from loracompose.demo.settings import DemoSettings
from loracompose.errors import LoraComposeError

DEFAULTS = {f.name: f.default for f in fields(DemoSettings)}


def register(sub) -> None:
    demo = sub.add_parser("demo", help="steer the packaged SmolLM2 with its starter modules, judge it, "
                                       "write a report")
    demo.add_argument("--out", default="runs/demo", help="where generations, metrics and the report go")
    demo.add_argument("--model", default=DEFAULTS["model"])
    demo.add_argument("--modules", default=None, help="modules directory (default: the base's starter modules)")
    demo.add_argument("--prompts", default=DEFAULTS["prompts"], help="prompt set: pplm, pplm35, neutral, or a file")
    demo.add_argument("--seeds", default=",".join(map(str, DEFAULTS["seeds"])), help="comma-separated run seeds")
    demo.add_argument("--samples", type=int, default=DEFAULTS["samples"], help="continuations per prompt and seed")
    demo.add_argument("--strength", type=float, default=DEFAULTS["strength"],
                      help=f"steering strength in (0, 4] (default {DEFAULTS['strength']:g})")
    demo.add_argument("--reference", default="none", help="perplexity model, e.g. gemma3-270m (default: none)")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args) -> None:
    from loracompose.demo.run import run_demo  # torch, transformers: loaded only when the command runs

    try:
        seeds = tuple(int(s) for s in args.seeds.split(","))
    except ValueError:
        raise LoraComposeError(f"--seeds '{args.seeds}' must be whole numbers, comma-separated (e.g. 1,2)") from None
    settings = DemoSettings(model=args.model, modules=args.modules, prompts=args.prompts, seeds=seeds,
                            samples=args.samples, strength=args.strength,
                            reference=None if args.reference == "none" else args.reference)
    report = run_demo(Path(args.out), settings)
    print(f"\n{report.read_text()}\nreport: {report.resolve()} (and report.html beside it)")
