"""The `evaluate`, `compare` and `judges` subcommands (registered into loracompose.cli)."""

from __future__ import annotations

import json
from pathlib import Path


def _summary(metrics: dict) -> str:
    from loracompose.evaluate.calibration import format_calibration
    from loracompose.evaluate.directions import is_directions

    if is_directions(metrics):
        return _directions_summary(metrics)
    lines = [f"{metrics['generations']['records']} generations, {metrics['generations']['prompts']} prompts"]
    lines += _attribute_lines(metrics)
    if "sentiment" in metrics["targets"]:
        lines.append("    (one direction only; the field reports both: --positive POS.jsonl --negative NEG.jsonl)")
    lines += _other_lines(metrics)
    calibration = format_calibration(metrics.get("calibration"))
    if calibration:
        lines.append(calibration)
    return "\n".join(lines)


def _attribute_lines(metrics: dict) -> list[str]:
    lines = []
    for attribute, result in metrics["attributes"].items():
        hard, soft = result["hard_accuracy"], result["soft_accuracy"]
        lines.append(f"{attribute}={result['target']}: hard accuracy {hard['value']:.3f} "
                     f"[{hard['ci'][0]:.3f}, {hard['ci'][1]:.3f}], soft {soft['value']:.3f} "
                     f"[{soft['ci'][0]:.3f}, {soft['ci'][1]:.3f}]")
        for judge in result["judges"]:
            test = judge["headline_test_accuracy"]
            trust = f"test accuracy {test:.3f} on {judge['headline_dataset']}" if test is not None else "no test data"
            lines.append(f"    {judge['name']:16} hits {judge['hit_rate']:.3f}   ({trust})")
        vote = result["vote_test_accuracy"].get(result["judges"][0]["headline_dataset"] or "", None)
        if vote:
            lines.append(f"    {'majority vote':16} test accuracy {vote['accuracy']:.3f} on "
                         f"{result['judges'][0]['headline_dataset']}")
    if metrics.get("joint_hard_accuracy"):
        joint = metrics["joint_hard_accuracy"]
        lines.append(f"joint hard accuracy {joint['value']:.3f} [{joint['ci'][0]:.3f}, {joint['ci'][1]:.3f}]")
    return lines


def _other_lines(metrics: dict) -> list[str]:
    lines = []
    fluency = metrics.get("fluency")
    if fluency and fluency["perplexity"] is not None:
        ci = fluency["ci"] or [float("nan")] * 2
        lines.append(f"perplexity {fluency['perplexity']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] under "
                     f"{fluency['reference_model']} ({fluency['tokens']} tokens)")
    d = metrics["diversity"]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines.append(f"distinct-1/2/3 {fmt(d['distinct_1'])}/{fmt(d['distinct_2'])}/{fmt(d['distinct_3'])}, "
                 f"repeated-2/3/4 {fmt(d['repeated_2'])}/{fmt(d['repeated_3'])}/{fmt(d['repeated_4'])}")
    speed = metrics["throughput"]["judged_texts_per_second"]
    lines.append(f"judged {speed} texts/s" + (f"; perplexity {fluency['texts_per_second']} texts/s" if fluency else ""))
    return lines


def _ci(result: dict) -> str:
    return f"{result['value']:.3f} [{result['ci'][0]:.3f}, {result['ci'][1]:.3f}]"


def _directions_summary(metrics: dict) -> str:
    from loracompose.evaluate.calibration import format_calibration

    attribute, directions = metrics["attribute"], metrics["directions"]
    fixed = "".join(f", {a}={label} fixed" for a, label in metrics["others"].items())
    first = next(iter(directions.values()))
    lines = [f"{attribute}, {len(directions)} directions from the same {first['generations']['prompts']} prompts{fixed}"]
    hard_name = "joint hard" if metrics["mean"]["hard_is_joint"] else "hard"
    for label, m in directions.items():
        hard = m["joint_hard_accuracy"] or m["attributes"][attribute]["hard_accuracy"]
        lines.append(f"toward {label:9} {hard_name} accuracy {_ci(hard)}, soft "
                     f"{_ci(m['attributes'][attribute]['soft_accuracy'])}   ({m['generations']['path']}, "
                     f"{m['generations']['records']} generations)")
    mean = metrics["mean"]
    lines.append(f"{'mean':16} {hard_name} accuracy {_ci(mean['hard_accuracy'])}, soft {_ci(mean['soft_accuracy'])}")
    for label, m in directions.items():
        lines.append(f"-- toward {label}:")
        lines += _attribute_lines(m) + _other_lines(m)
    baselines = {}
    if metrics.get("baseline"):
        baselines[f"baseline {Path(metrics['baseline']['path']).name}"] = metrics["baseline"]
    calibration = format_calibration(metrics.get("calibration"), baselines)
    if calibration:
        lines.append(calibration)
    return "\n".join(lines)


def _judge_settings_args(parser) -> None:
    group = parser.add_argument_group("built-in judges (each setting keys its own cached panel)")
    group.add_argument("--embed-per-label", type=int, default=None,
                       help="training texts per dataset and label for the MiniLM judge (default 600)")
    group.add_argument("--ngram-per-label", type=int, default=None,
                       help="training texts per dataset and label for the n-gram judges (default 4000)")
    group.add_argument("--test-per-label", type=int, default=None,
                       help="test texts per dataset and label to measure each judge (default 500)")


def _judge_settings(args):
    from loracompose.evaluate.panel import JudgeSettings

    names = ("embed_per_label", "ngram_per_label", "test_per_label")
    return JudgeSettings(**{n: getattr(args, n) for n in names if getattr(args, n) is not None})


def _directions(args) -> dict[str, str]:
    """label → generations file from --positive, --negative and --toward LABEL=FILE."""
    from loracompose.errors import LoraComposeError

    files: dict[str, str] = {}
    pairs = [("positive", args.positive), ("negative", args.negative)]
    if (args.positive or args.negative) and args.attribute != "sentiment":
        raise LoraComposeError(f"--positive/--negative steer sentiment; for --attribute {args.attribute} use "
                               "--toward LABEL=FILE")
    for entry in args.toward or ():
        label, sep, path = entry.partition("=")
        if not sep or not label.strip() or not path.strip():
            raise LoraComposeError(f"--toward '{entry}' is not of the form LABEL=FILE (e.g. --toward sport=sport.jsonl)")
        pairs.append((label.strip(), path.strip()))
    for label, path in pairs:
        if path is None:
            continue
        if label in files:
            raise LoraComposeError(f"the {label} direction is given twice ('{files[label]}' and '{path}')")
        files[label] = path
    return files


def cmd_evaluate(args) -> None:
    from loracompose.errors import LoraComposeError
    from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, write_metrics

    options = EvalOptions(
        reference=None if args.reference.lower() == "none" else args.reference,
        judge_dirs=tuple(args.judge or ()), judge_input=args.judge_input,
        settings=_judge_settings(args), batch_size=args.batch_size, resamples=args.resamples, seed=args.seed,
        progress=not args.no_progress, check_directions=True, calibrate=not args.no_calibration)
    files = _directions(args)
    if files:
        from loracompose.evaluate.attributes import parse_targets
        from loracompose.evaluate.directions import evaluate_directions
        from loracompose.evaluate.metrics import known_labels

        if args.generations:
            raise LoraComposeError(f"give either one generations file with --target, or the directions "
                                   f"(--positive/--negative/--toward), not both ('{args.generations}')")
        others = parse_targets(args.target, known_labels([])) if args.target else {}
        metrics = evaluate_directions(files, args.attribute, others, options, baseline=args.baseline)
    else:
        if not args.generations or not args.target:
            raise LoraComposeError("evaluate needs generations for both directions (--positive POS.jsonl "
                                   "--negative NEG.jsonl), or one generations file with --target attribute=label")
        if args.baseline:
            raise LoraComposeError("--baseline joins the calibration of a both-direction evaluation "
                                   "(--positive/--negative); evaluate the baseline file on its own instead")
        metrics = evaluate_generations(args.generations, args.target, options)
    print(_summary(metrics))
    if args.out:
        write_metrics(metrics, args.out)
        print(f"metrics written to {args.out}")


def cmd_compare(args) -> None:
    from loracompose.evaluate.compare import compare, format_table, rows_as_dicts

    rows = compare(args.base, args.others, resamples=args.resamples, seed=args.seed)
    print(format_table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"base": args.base, "rows": rows_as_dicts(rows)}, indent=2) + "\n")
        print(f"table written to {args.out}")


def cmd_judges(args) -> None:
    from loracompose.evaluate.panel import judge_panel

    for attribute in args.attributes:
        panel = judge_panel(attribute, _judge_settings(args), progress=not args.no_progress)
        built = f"built in {panel.build_seconds:.0f} s" if panel.build_seconds is not None else "build time unknown"
        print(f"{attribute} judges ({', '.join(panel.labels)}) — trained on the "
              f"'{panel.provenance.get('trained_on_split')}' split, accuracy on each dataset's test split; "
              f"{built} [cached in {panel.provenance['directory']}]")
        datasets = list(next(iter(panel.accuracy.values()), {}))
        header = "".join(f"{d:>17}" for d in datasets)
        print(f"    {'judge':16}{'':10}{header}")
        for name, per_dataset in panel.accuracy.items():
            label = name if name != "vote" else "majority vote"
            cells = "".join(f"{per_dataset[d]['accuracy']:>10.3f} n={per_dataset[d]['n']:<4}" for d in datasets)
            print(f"    {label:16}{'in-domain':10}{cells}")
            cross = panel.cross_domain.get(name)
            if cross:
                cells = "".join(f"{cross[d]['accuracy']:>10.3f} n={cross[d]['n']:<4}" if d in cross else f"{'–':>17}"
                                for d in datasets)
                print(f"    {'':16}{'cross':10}{cells}")
        if panel.cross_domain:
            print("    cross = trained on the other datasets' judge splits only (leave that dataset out)")


def register(subparsers) -> None:
    ev = subparsers.add_parser("evaluate", help="attribute accuracy, perplexity and diversity of a generations file")
    ev.add_argument("generations", nargs="?", default=None,
                    help="one generations JSONL (prompt, text, optional sample and seed), with --target")
    ev.add_argument("--target", default=None,
                    help="attribute=label pairs, e.g. sentiment=positive,topic=sport; with the directions: "
                         "fixed targets of other attributes that every direction shares (e.g. topic=sport)")
    both = ev.add_argument_group("both directions (how the field reports sentiment control)")
    both.add_argument("--positive", default=None, help="generations steered toward positive sentiment")
    both.add_argument("--negative", default=None, help="generations steered toward negative, from the same prompts")
    both.add_argument("--toward", action="append", default=None, metavar="LABEL=FILE",
                      help="generations steered toward LABEL of --attribute (repeatable; the general form)")
    both.add_argument("--attribute", default="sentiment", help="the steered attribute (default sentiment)")
    both.add_argument("--baseline", default=None,
                      help="the base model's generations of the same prompts: their vote shares join the "
                           "calibration line")
    ev.add_argument("--no-calibration", action="store_true",
                    help="skip the panel's shares on human-written neutral text (sentiment)")
    ev.add_argument("--out", default=None, help="write metrics JSON here (per-sample results included)")
    ev.add_argument("--reference", default="gemma3-270m",
                    help="reference model for perplexity: packaged name, HF directory or hub id; 'none' skips it")
    ev.add_argument("--judge", action="append", default=None,
                    help="a user judge: HF text-classification directory with a label mapping; repeatable")
    ev.add_argument("--judge-input", choices=["full", "continuation"], default="full",
                    help="what the judges read: prompt + continuation (default) or the continuation alone")
    ev.add_argument("--batch-size", type=int, default=8, help="texts per reference-model forward")
    ev.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples for the intervals")
    ev.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    _judge_settings_args(ev)
    ev.set_defaults(func=cmd_evaluate)

    cmp = subparsers.add_parser("compare", help="paired differences and p-values of systems against a baseline")
    cmp.add_argument("base", help="metrics JSON of the baseline system")
    cmp.add_argument("others", nargs="+", help="metrics JSON of the systems to compare with it")
    cmp.add_argument("--out", default=None, help="also write the table as JSON")
    cmp.add_argument("--resamples", type=int, default=10_000)
    cmp.add_argument("--seed", type=int, default=0)
    cmp.set_defaults(func=cmd_compare)

    judges = subparsers.add_parser("judges", help="train (once) and show the built-in judges with their test accuracy")
    judges.add_argument("attributes", nargs="*", default=["sentiment", "topic"], help="sentiment, topic")
    judges.add_argument("--no-progress", action="store_true")
    _judge_settings_args(judges)
    judges.set_defaults(func=cmd_judges)
