"""CLI for composition: generate, compose (weight-level), export, learn-weights, modules."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from loracompose.errors import LoraComposeError
from loracompose.paths import write_text_atomic


def _load_steerer(args, names: list[str] | None):
    """Base model + the named modules (all under --modules when names is None)."""
    from loracompose.compose.bank import ModuleBank
    from loracompose.generate import BASE_MEMBER, Steerer
    from loracompose.models import load_base

    _starter_keyword(args)
    base = load_base(args.model, quantize=None if args.quantize == "none" else args.quantize)
    paths = _module_paths(args.modules) if args.modules else {}
    if names is not None:
        unknown = [n for n in names if n not in paths and n != BASE_MEMBER]
        if unknown:
            known = ", ".join(paths) or "none (pass --modules)"
            raise LoraComposeError(f"unknown module '{unknown[0]}'; known modules: {known}")
        paths = {n: p for n, p in paths.items() if n in names}
    bank = ModuleBank(base.model, paths, base.fingerprint)
    return Steerer(base.model, base.tokenizer, bank, args.model), base


def _starter_keyword(args) -> None:
    """`--modules starter`: the starter modules shipped for `--model`."""
    if args.modules == "starter":
        from loracompose.steer import starter_modules_dir

        args.modules = str(starter_modules_dir(args.model))


def _module_paths(spec: str) -> dict[str, Path]:
    """A directory of modules, or a comma-separated list of module directories."""
    from loracompose.compose.bank import discover_modules
    from loracompose.modules import is_module, read_module

    parts = [Path(p) for p in spec.split(",") if p]
    if len(parts) == 1 and not is_module(parts[0]):
        return discover_modules(parts[0])
    return {read_module(p).name: p for p in parts}


def _merge_options(args):
    from loracompose.compose.weight_methods import MergeOptions

    return MergeOptions(density=args.density, seed=args.merge_seed, svd_rank=args.svd_rank)


def _sampling(args):
    from loracompose.decoding import SamplingConfig

    return SamplingConfig(args.max_new_tokens, args.top_k, args.top_p, args.temperature, args.batch_size)


def _steering(args):
    """--steer resolved against --modules (default: the base's starter modules), or None."""
    from loracompose.modules import read_module
    from loracompose.steer import parse_steer, resolve_steering, starter_modules_dir

    if args.steer is None:
        if args.strength is not None or args.strategy is not None:
            raise LoraComposeError("--strength and --strategy apply to --steer; for --compose give weights instead")
        return None
    if args.compose or args.method:
        raise LoraComposeError("--steer chooses the modules and the method itself; use either --steer, or "
                               "--compose with --method")
    targets = parse_steer(args.steer)
    if not args.modules:
        args.modules = str(starter_modules_dir(args.model))
    _starter_keyword(args)
    infos = {name: read_module(path) for name, path in _module_paths(args.modules).items()}
    kwargs = {k: v for k, v in (("strength", args.strength), ("strategy", args.strategy)) if v is not None}
    return resolve_steering(infos, targets, **kwargs)


def cmd_generate(args) -> None:
    from loracompose.compose import parse_composition
    from loracompose.prompts import load_prompts

    steering = _steering(args)
    if steering:
        composition, method = steering.composition, steering.method
    else:
        composition, method = (parse_composition(args.compose) if args.compose else {}), args.method or "output-sum"
    prompts = args.prompt or load_prompts(args.prompts)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        raise LoraComposeError(f"--seeds '{args.seeds}' must be whole numbers, comma-separated (e.g. 789,3443)") from None
    steerer, _ = _load_steerer(args, list(composition))
    records = steerer.generate(prompts, composition, method, seeds, args.samples, _sampling(args),
                               args.template, _merge_options(args), progress=True)
    if steering:
        print(f"steering {args.steer}: {method} of " + ", ".join(f"{n}={w:g}" for n, w in composition.items()))
        records = [{**r, "steer": steering.record()} for r in records]
    if args.out:
        # a killed run leaves no truncated generations file
        out = write_text_atomic(args.out, "".join(json.dumps(r) + "\n" for r in records))
        print(f"{len(records)} generations written to {out}")
    else:
        for r in records:
            print(f"{r['prompt']}{r['text']}\n---")


def cmd_compose(args) -> None:
    from loracompose.compose import parse_composition
    from loracompose.compose.merge import write_merged

    composition = parse_composition(args.compose)
    steerer, base = _load_steerer(args, list(composition))
    method = "delta-sum" if args.command == "export" else args.method
    out = write_merged(steerer.bank, composition, method, steerer.layer_order, args.out, base_model_name=args.model,
                       fingerprint=base.fingerprint, options=_merge_options(args), overwrite=args.overwrite)
    rank = json.loads((out / "adapter_config.json").read_text())["r"]
    print(f"{method} of {args.compose} written to {out} (a plain PEFT LoRA adapter, rank {rank}; "
          f"vLLM needs --max-lora-rank >= {rank})")


def cmd_learn_weights(args) -> None:
    from loracompose.compose.learn import LearnConfig, learn_weights
    from loracompose.data import load_attribute_dataset

    if ":" in args.examples and not Path(args.examples).exists():
        dataset, _, label = args.examples.partition(":")
        texts = load_attribute_dataset(dataset).texts("validation", label)[: args.max_examples]
    else:
        path = Path(args.examples)
        if not path.is_file():
            raise LoraComposeError(f"examples '{args.examples}' is neither a file nor DATASET:LABEL")
        texts = [line for line in path.read_text().splitlines() if line.strip()][: args.max_examples]
    names = args.names.split(",") if args.names else None
    steerer, _ = _load_steerer(args, names)
    result = learn_weights(steerer.model, steerer.tokenizer, steerer.bank, texts,
                           LearnConfig(steps=args.steps, learning_rate=args.lr, l1=args.l1))
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=2))
    print(f"weights: {result['composition']}")
    print(f"LM loss on {result['examples']} examples: base {result['loss_base']:.4f}, start "
          f"{result['loss_start']:.4f}, learned {result['loss_end']:.4f}")


def cmd_modules(args) -> None:
    from loracompose.modules import read_module

    _starter_keyword(args)
    for name, path in _module_paths(args.modules).items():
        info = read_module(path)
        print(f"{name:32} attribute={info.attribute} label={info.label} rank={info.rank} alpha={info.alpha:g} "
              f"[{path}]")


def _model_args(parser: argparse.ArgumentParser, quantize_default: str = "none") -> None:
    parser.add_argument("--model", default="smollm2-135m", help="packaged name, local HF directory or hub id")
    parser.add_argument("--modules", default=None, help="directory of modules, module directories (comma-separated), "
                                                        "or 'starter' (the modules shipped for --model)")
    parser.add_argument("--quantize", choices=["nf4", "none"], default=quantize_default,
                        help="base weights (default dense: NF4 makes SmolLM2's text more repetitive)")


def _merge_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--density", type=float, default=0.5, help="ties/dare/magnitude-prune: share kept")
    parser.add_argument("--merge-seed", type=int, default=0, help="dare: seed of the drop masks")
    parser.add_argument("--svd-rank", type=int, default=8, help="delta-svd: rank kept")


def register(sub) -> None:
    from loracompose.compose import METHODS, WEIGHT_METHODS

    gen = sub.add_parser("generate", help="sample continuations under a composition of modules")
    _model_args(gen)
    gen.add_argument("--compose", default="", help="NAME=WEIGHT,... (empty: the base model); logit-sum also "
                                                  "takes base=WEIGHT")
    gen.add_argument("--method", default=None, choices=list(METHODS), help="composition method (default output-sum)")
    gen.add_argument("--steer", default=None,
                     help="attribute=value,... (e.g. sentiment=positive,topic=sport): steer by the modules' "
                          "metadata instead of --compose; without --modules, the base's starter modules")
    gen.add_argument("--strength", type=float, default=None, help="--steer: strength S in (0, 4] (default 2)")
    gen.add_argument("--strategy", default=None, choices=["contrast", "expert", "logit-contrast"],
                     help="--steer: how modules are combined (default contrast: experts minus the opposite value "
                          "of a two-valued attribute such as sentiment)")
    gen.add_argument("--prompts", default="pplm",
                     help="pplm (15), pplm35 (the study's 35), neutral (35 BBC openings), heldout:DATASET, "
                          "or a .txt/.jsonl file")
    gen.add_argument("--prompt", action="append", help="a literal prompt (repeatable; overrides --prompts)")
    gen.add_argument("--seeds", default="0", help="comma-separated run seeds")
    gen.add_argument("--samples", type=int, default=1, help="continuations per prompt and seed")
    gen.add_argument("--max-new-tokens", type=int, default=40)
    gen.add_argument("--top-k", type=int, default=50)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--batch-size", type=int, default=16)
    gen.add_argument("--template", default="plain", help="plain | instruct | a format with {prompt} and {targets}")
    gen.add_argument("--out", default=None, help="JSONL file (default: print)")
    _merge_args(gen)
    gen.set_defaults(func=cmd_generate)

    weight_methods = list(WEIGHT_METHODS)
    comp = sub.add_parser("compose", help="merge modules into a new module directory (weight-level methods)")
    _model_args(comp, "nf4")
    comp.add_argument("--compose", required=True, help="NAME=WEIGHT,...")
    comp.add_argument("--method", required=True, choices=weight_methods)
    comp.add_argument("--out", required=True)
    comp.add_argument("--overwrite", action="store_true")
    _merge_args(comp)
    comp.set_defaults(func=cmd_compose)

    export = sub.add_parser("export", help="write an output-sum composition as one plain PEFT adapter (exact)")
    _model_args(export, "nf4")
    export.add_argument("--compose", required=True, help="NAME=WEIGHT,...")
    export.add_argument("--out", required=True)
    export.add_argument("--overwrite", action="store_true")
    _merge_args(export)
    export.set_defaults(func=cmd_compose)

    learn = sub.add_parser("learn-weights", help="fit composition weights to example texts (LoRAHub-style)")
    _model_args(learn)
    learn.add_argument("--examples", required=True, help="a text file (one example a line) or DATASET:LABEL")
    learn.add_argument("--names", default=None, help="modules to weigh (default: all under --modules)")
    learn.add_argument("--max-examples", type=int, default=32)
    learn.add_argument("--steps", type=int, default=40)
    learn.add_argument("--lr", type=float, default=0.05)
    learn.add_argument("--l1", type=float, default=0.01)
    learn.add_argument("--out", default=None, help="write the result as JSON")
    learn.set_defaults(func=cmd_learn_weights)

    mods = sub.add_parser("modules", help="list the modules in a directory")
    mods.add_argument("modules", help="a modules directory, or 'starter'")
    mods.add_argument("--model", default="smollm2-135m", help="with 'starter': the base whose starter modules")
    mods.set_defaults(func=cmd_modules)
