"""The `evaluate`, `compare` and `judges` subcommands (registered into loracompose.cli)."""

from __future__ import annotations

import json
from pathlib import Path


def _summary(metrics: dict) -> str:
    lines = [f"{metrics['generations']['records']} generations, {metrics['generations']['prompts']} prompts"]
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


def cmd_evaluate(args) -> None:
    from loracompose.evaluate.metrics import EvalOptions, evaluate_generations, write_metrics

    options = EvalOptions(
        reference=None if args.reference.lower() == "none" else args.reference,
        judge_dirs=tuple(args.judge or ()), judge_input=args.judge_input,
        settings=_judge_settings(args), batch_size=args.batch_size, resamples=args.resamples, seed=args.seed,
        progress=not args.no_progress)
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
        print(f"{attribute} judges ({', '.join(panel.labels)}) — test accuracy per dataset "
              f"[cached in {panel.provenance['directory']}]")
        for name, per_dataset in panel.accuracy.items():
            scores = ", ".join(f"{d} {v['accuracy']:.3f} (n={v['n']})" for d, v in per_dataset.items())
            print(f"    {name if name != 'vote' else 'majority vote':16} {scores}")


def register(subparsers) -> None:
    ev = subparsers.add_parser("evaluate", help="attribute accuracy, perplexity and diversity of a generations file")
    ev.add_argument("generations", help="generations JSONL (prompt, text, optional sample and seed)")
    ev.add_argument("--target", required=True, help="attribute=label pairs, e.g. sentiment=positive,topic=sport")
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
