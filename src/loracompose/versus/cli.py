"""`loracompose versus` (the side-by-side run) and `loracompose blind draw|reveal` (the blind read)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from loracompose.errors import LoraComposeError
from loracompose.versus.conditions import METHODS, VersusSettings, parse_floats

DEFAULTS = {f.name: f.default for f in fields(VersusSettings)}


def _csv(values) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise LoraComposeError(f"{flag} '{text}' must be whole numbers, comma-separated (e.g. 1,2,3)") from None


def register(sub) -> None:
    vs = sub.add_parser("versus", help="every way to steer sentiment side by side: base, prompting, activation "
                                       "addition, DExperts, model arithmetic, the module strategies")
    vs.add_argument("--out", default="runs/versus", help="where generations, scores, tables and the plot go")
    vs.add_argument("--model", default=DEFAULTS["model"])
    vs.add_argument("--modules", default=None, help="modules directory (default: the base's starter modules)")
    vs.add_argument("--prompts", default=_csv(DEFAULTS["prompt_sets"]), help="comma-separated prompt sets")
    vs.add_argument("--seeds", default=_csv(DEFAULTS["seeds"]))
    vs.add_argument("--methods", default=_csv(DEFAULTS["methods"]), help=f"any of {', '.join(METHODS)}")
    for name in ("contrast", "expert", "dexperts", "arithmetic"):
        vs.add_argument(f"--{name}", default=_csv(DEFAULTS[name]), help=f"{name} strengths (comma-separated)")
    vs.add_argument("--actadd-layers", default=_csv(DEFAULTS["actadd_layers"]))
    vs.add_argument("--actadd-scales", default=_csv(DEFAULTS["actadd_scales"]),
                    help="activation addition scales, × the median residual norm, in (0, 2]")
    vs.add_argument("--reference", default=DEFAULTS["reference"], help="perplexity model; 'none' skips perplexity")
    vs.add_argument("--perplexity-seeds", default=_csv(DEFAULTS["perplexity_seeds"]))
    vs.add_argument("--independent-judge", default=DEFAULTS["independent"],
                    help="auto (default: chosen from the modules' corpora), lexicons, or a held-out judge by name")
    vs.add_argument("--blind", default=None, help="results.json of a `blind reveal`: adds the blind-read shares")
    vs.set_defaults(func=cmd_versus)

    blind = sub.add_parser("blind", help="a blind read: draw a shuffled sheet for a reader, then reveal the shares")
    actions = blind.add_subparsers(dest="action", required=True)
    draw = actions.add_parser("draw", help="draw texts from several generations files into a blind sheet")
    draw.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                      help="a condition's generations (repeatable)")
    draw.add_argument("--versus", default=None, help="a `versus` output directory to draw from (with --conditions)")
    draw.add_argument("--prompt-set", default="pplm35", help="with --versus: which prompt set")
    draw.add_argument("--conditions", default="base,prompt,contrast-2,dexperts-1,arithmetic-2,actadd-l22-0.2",
                      help="with --versus: condition names (each direction is drawn separately)")
    draw.add_argument("--per-condition", type=int, default=40)
    draw.add_argument("--seed", type=int, default=0)
    draw.add_argument("--out", required=True, help="directory for sheet.csv, instructions.md and key.json")
    draw.set_defaults(func=cmd_blind_draw)
    reveal = actions.add_parser("reveal", help="check a filled sheet and report each condition's shares")
    reveal.add_argument("directory", help="the directory `blind draw` wrote")
    reveal.add_argument("--sheet", required=True, help="the filled sheet (CSV)")
    reveal.add_argument("--reader", required=True, help="who read it (a person, or an automated stand-in, named)")
    reveal.set_defaults(func=cmd_blind_reveal)


def cmd_versus(args) -> None:
    settings = VersusSettings(
        model=args.model, modules=args.modules, prompt_sets=tuple(p for p in args.prompts.split(",") if p.strip()),
        seeds=_ints(args.seeds, "--seeds"), methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        contrast=parse_floats(args.contrast, "--contrast"), expert=parse_floats(args.expert, "--expert"),
        dexperts=parse_floats(args.dexperts, "--dexperts"), arithmetic=parse_floats(args.arithmetic, "--arithmetic"),
        actadd_layers=_ints(args.actadd_layers, "--actadd-layers"),
        actadd_scales=parse_floats(args.actadd_scales, "--actadd-scales"),
        reference=None if args.reference.lower() == "none" else args.reference,
        perplexity_seeds=_ints(args.perplexity_seeds, "--perplexity-seeds"), independent=args.independent_judge)
    from loracompose.prompts import check_prompt_set
    from loracompose.versus.run import run_versus

    for prompt_set in settings.prompt_sets:  # bad sets fail before the model loads
        check_prompt_set(prompt_set)
    report = run_versus(settings, Path(args.out), args.blind)
    print(report.read_text())
    print(f"tables: {report.resolve()}; frontier plot: {report.parent.resolve() / 'frontier.png'}")


def _versus_sources(directory: Path, prompt_set: str, names: list[str]):
    from loracompose.evaluate.blind import Source

    folder = directory / "generations" / prompt_set
    if not folder.is_dir():
        raise LoraComposeError(f"{folder} does not exist: run `loracompose versus --out {directory}` first")
    available = sorted(p.stem for p in folder.glob("*.jsonl"))
    sources = []
    for name in names:
        if (folder / f"{name}.jsonl").is_file():
            sources.append(Source(name, folder / f"{name}.jsonl", {"prompt_set": prompt_set, "condition": name}))
            continue
        found = False
        for direction in ("positive", "negative"):
            path = folder / f"{name}-{direction}.jsonl"
            if path.is_file():
                found = True
                sources.append(Source(f"{name} → {direction}", path,
                                      {"prompt_set": prompt_set, "condition": name, "direction": direction}))
        if not found:
            raise LoraComposeError(f"no generations for condition '{name}' in {folder}; there are: "
                                   f"{', '.join(available)}")
    return sources


def cmd_blind_draw(args) -> None:
    from loracompose.evaluate.blind import Source, draw

    sources = []
    if args.versus:
        sources += _versus_sources(Path(args.versus), args.prompt_set,
                                   [c.strip() for c in args.conditions.split(",") if c.strip()])
    for entry in args.file:
        name, sep, path = entry.partition("=")
        if not sep or not name.strip() or not Path(path.strip()).is_file():
            raise LoraComposeError(f"--file '{entry}' must be NAME=PATH with an existing generations file")
        sources.append(Source(name.strip(), Path(path.strip()), {}))
    if not sources:
        raise LoraComposeError("nothing to draw: give --file NAME=PATH (repeatable) or --versus DIR")
    sheet = draw(sources, args.per_condition, Path(args.out), args.seed)
    print(f"blind sheet: {sheet} ({sum(1 for _ in sheet.open()) - 1} rows); instructions: {sheet.parent / 'instructions.md'}"
          f"\nkeep {sheet.parent / 'key.json'} from the reader")


def cmd_blind_reveal(args) -> None:
    from loracompose.evaluate.blind import format_results, reveal

    record = reveal(Path(args.directory), Path(args.sheet), args.reader)
    print(format_results(record))
    print(f"results: {Path(args.directory) / 'results.json'}")
