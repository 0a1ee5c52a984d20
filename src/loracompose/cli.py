"""Command line: one subcommand per stage, each a thin call into the library."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from loracompose import __version__
from loracompose.compose.cli import register as register_compose
from loracompose.demo.cli import register as register_demo
from loracompose.errors import LoraComposeError
from loracompose.logs import configure_logging, quiet_transformers
from loracompose.evaluate.cli import register as register_evaluate
from loracompose.serve.cli import register as register_serve
from loracompose.versus.cli import register as register_versus
from loracompose.experiments.cli import register as register_experiments


def _data_options_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-column", default="text", help="text column of a user file")
    parser.add_argument("--label-column", default="label", help="label column of a user file")
    parser.add_argument("--attribute", default=None, help="attribute name for a user file (default: label)")
    parser.add_argument("--min-confidence", type=float, default=None,
                        help="tweets: drop rows labelled with lower confidence (default 0.6; 0 keeps all)")
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--test-fraction", type=float, default=0.10)


def _data_options(args):
    from loracompose.data import DataOptions, SplitSizes

    return DataOptions(args.text_column, args.label_column, args.attribute, args.min_confidence,
                       SplitSizes(args.validation_fraction, args.test_fraction))


def cmd_data_list(args) -> None:
    from loracompose.data import BUILTIN_DATASETS

    for d in BUILTIN_DATASETS.values():
        print(f"{d.name:16} {d.attribute:10} {', '.join(d.labels):45} {d.description} [package {d.package}]")


def cmd_data_show(args) -> None:
    from loracompose.data import load_attribute_dataset

    dataset = load_attribute_dataset(args.name, _data_options(args))
    words = dataset.frame["text"].str.split().str.len()
    print(f"dataset   {dataset.name}  (attribute: {dataset.attribute}; source: {dataset.source})")
    print(f"labels    {', '.join(dataset.labels)}")
    print(f"hash      {dataset.content_hash[:16]}")
    print("\nexamples per label and split:")
    counts = dataset.counts()
    counts.loc["total"] = counts.sum()
    print(counts.to_string())
    print(f"\nlength in words: mean {words.mean():.1f}, median {words.median():.0f}, "
          f"p95 {words.quantile(0.95):.0f}, min {words.min()}, max {words.max()}")
    print("\ntwo examples (train split):")
    train = dataset.frame[dataset.frame["split"] == "train"]
    for _, row in train.sample(n=min(2, len(train)), random_state=0).iterrows():
        text = row["text"].replace("\n", " ")
        print(f"  [{row['label']}] {text[:300]}{'…' if len(text) > 300 else ''}")


def _train_config(args):
    from loracompose.train import TrainConfig

    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values["datasets"] = [d.strip() for d in args.data.split(",") if d.strip()]
    values["quantize"] = None if args.quantize == "none" else args.quantize
    values["min_confidence"] = args.min_confidence
    values["attribute"] = args.attribute
    if args.target_modules:
        values["target_modules"] = args.target_modules.split(",")
    return TrainConfig(**values)


def cmd_train(args) -> None:
    from loracompose.train import train_module

    trained = train_module(_train_config(args), args.out, overwrite=args.overwrite, resume=args.resume)
    meta, t = trained.metadata, trained.metadata["training"]
    print(f"module {meta['name']} written to {trained.path}: {t['steps']} steps, train loss {t['first_train_loss']:.3f} → "
          f"{t['train_loss']:.3f}, validation loss {t['validation_loss']}, "
          f"{t['real_tokens_per_second']} real tokens/s, peak memory {t['peak_memory_mb']:.0f} MB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loracompose", description=__doc__)
    parser.add_argument("--version", action="version", version=f"loracompose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="list and inspect attribute datasets").add_subparsers(dest="data_cmd",
                                                                                            required=True)
    data.add_parser("list", help="the built-in datasets").set_defaults(func=cmd_data_list)
    show = data.add_parser("show", help="labels, split counts, lengths and examples of a dataset")
    show.add_argument("name", help="built-in name or a JSONL/CSV/Parquet file")
    _data_options_args(show)
    show.set_defaults(func=cmd_data_show)

    train = sub.add_parser("train", help="train one QLoRA module for one label")
    train.add_argument("--model", default="smollm2-135m", help="packaged name, local HF directory or hub id")
    train.add_argument("--data", required=True, help="dataset name(s) or file(s), comma-separated")
    train.add_argument("--label", required=True, help="attribute value to model, e.g. positive")
    train.add_argument("--out", required=True, help="module directory to write, e.g. modules/positive@imdb")
    train.add_argument("--mixing", default="concat", help="concat | balanced | temperature:T")
    train.add_argument("--rank", type=int)
    train.add_argument("--alpha", type=float)
    train.add_argument("--dropout", type=float)
    train.add_argument("--target-modules", default=None, help="comma-separated (default: all linear projections)")
    train.add_argument("--learning-rate", "--lr", type=float, dest="learning_rate")
    train.add_argument("--steps", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--seq-len", type=int, help="tokens per packed row")
    train.add_argument("--long-texts", choices=["cut", "chunk"],
                       help="texts longer than --seq-len: keep the opening (cut, default) or use all (chunk)")
    train.add_argument("--unit", choices=["text", "sentence"],
                       help="training unit: each text whole (default) or each of its sentences (pysbd)")
    train.add_argument("--warmup-steps", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--quantize", choices=["nf4", "none"], default="nf4")
    train.add_argument("--gradient-checkpointing", action="store_true", default=None)
    train.add_argument("--eval-every", type=int)
    train.add_argument("--eval-rows", type=int, help="packed validation rows")
    train.add_argument("--save-every", type=int)
    train.add_argument("--min-examples", type=int)
    train.add_argument("--overwrite", action="store_true", help="replace an existing module at --out")
    train.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    _data_options_args(train)
    train.set_defaults(func=cmd_train)

    register_compose(sub)

    register_demo(sub)
    register_evaluate(sub)
    register_experiments(sub)
    register_serve(sub)
    register_versus(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)  # before the command imports bitsandbytes, which logs at import
    quiet_transformers(args.verbose)
    try:
        args.func(args)
    except LoraComposeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
