"""The `run`, `results` and `report` subcommands (registered into loracompose.cli).

The commands import the experiment modules inside their functions: `loracompose.cli`
imports this module to register the subcommands, and those modules bring in torch,
transformers and matplotlib, which `loracompose --help` and the other commands do
not need.
"""

from __future__ import annotations

from pathlib import Path

from loracompose.errors import LoraComposeError

DEFAULT_DB = "runs/experiments/results.sqlite"


def cmd_run(args) -> None:
    from loracompose.experiments.executors import make_executor
    from loracompose.experiments.runner import run_experiment
    from loracompose.experiments.spec import load_spec, select

    spec = select(load_spec(args.spec), models=_names(args.models), sets=_names(args.sets))
    if args.workdir:
        spec.workdir = Path(args.workdir)
    if args.plan:
        from loracompose.experiments.plan import build_plan
        from loracompose.experiments.workload import format_workload, workload

        print(f"experiment {spec.name}: workdir {spec.workdir} (nothing is run)")
        print(format_workload(workload(build_plan(spec), spec.workdir)))
        return
    executor = make_executor(args.executor, cpus_per_task=args.cpus_per_task, gpus_per_task=args.gpus_per_task,
                             num_cpus=args.num_cpus)
    summary = run_experiment(spec, executor, progress=not args.no_progress)
    ran = ", ".join(f"{n} {stage}" for stage, n in sorted(summary.stages_run.items())) or "nothing (all cached)"
    print(f"experiment {summary.experiment}: {summary.units} units in {summary.wall_seconds:.0f} s; ran {ran}")
    print(f"results in {summary.db} (loracompose results --db {summary.db}); log in {summary.log}")


def _names(value: str | None) -> list[str] | None:
    return None if value is None else [n.strip() for n in value.split(",") if n.strip()]


def _open(db: str):
    from loracompose.experiments.store import Store

    if not Path(db).is_file():
        raise LoraComposeError(f"results database '{db}' does not exist; run an experiment first "
                               "(loracompose run configs/study-small.yaml) or pass --db")
    return Store(db)


def cmd_results(args) -> None:
    with _open(args.db) as store:
        rows = store.results(experiment=args.experiment, model=args.model, task=args.task,
                             condition=args.condition, prompt_set=args.prompt_set)
    if not rows:
        print("no results match")
        return
    header = ["experiment", "model", "task", "prompt_set", "condition", "target", "seed", "hard", "soft",
              "perplexity", "distinct_2", "n"]
    fmt = lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    shown = {"model": lambda v: Path(v).name if "/" in v else v, "n": lambda v: str(int(v))}
    lines = [[shown.get(h, fmt)(r[h]) for h in header] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for line in lines:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def cmd_report(args) -> None:
    try:
        from loracompose.experiments.report import write_report
    except ImportError as exc:
        raise LoraComposeError(f"the report needs matplotlib ({exc}): pip install 'loracompose[experiments]'") from None

    with _open(args.db) as store:
        experiments = store.experiments()
        if not experiments:
            raise LoraComposeError(f"results database '{args.db}' holds no results yet")
        name = args.experiment or experiments[-1]
        if name not in experiments:
            raise LoraComposeError(f"no experiment '{name}' in '{args.db}'; it holds: {', '.join(experiments)}")
        out = Path(args.out) if args.out else Path(args.db).parent / "report" / name
        paths = write_report(store, name, out, examples=args.examples)
    print(f"report of experiment {name}: {paths['markdown']} and {paths['html']}")


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run an experiment grid (cached, resumable) and store its results")
    run.add_argument("spec", help="experiment spec (YAML), e.g. configs/study-small.yaml")
    run.add_argument("--executor", choices=["inprocess", "ray"], default="inprocess",
                     help="in this process (default), or Ray tasks on a local instance or RAY_ADDRESS")
    run.add_argument("--workdir", default=None, help="override the spec's workdir (cache, results, logs)")
    run.add_argument("--cpus-per-task", type=float, default=None, help="ray: CPUs per task (default 1)")
    run.add_argument("--gpus-per-task", type=float, default=None, help="ray: GPUs per training/generation task")
    run.add_argument("--num-cpus", type=int, default=None, help="ray: CPUs of a local instance (default all)")
    run.add_argument("--models", default=None, metavar="NAME,...",
                     help="run only these of the spec's models (a part of the grid, e.g. for another machine)")
    run.add_argument("--sets", default=None, metavar="SET,...",
                     help="run only the spec's task entries of these task sets, e.g. topic,multi")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--plan", action="store_true",
                     help="run nothing: per model, the units and tokens of the grid and how many the workdir holds")
    run.set_defaults(func=cmd_run)

    results = subparsers.add_parser("results", help="query the results database")
    results.add_argument("--db", default=DEFAULT_DB)
    for name in ("experiment", "model", "task", "condition", "prompt-set"):
        results.add_argument(f"--{name}", default=None, dest=name.replace("-", "_"))
    results.set_defaults(func=cmd_results)

    report = subparsers.add_parser("report", help="Markdown + HTML report with plots from the results database")
    report.add_argument("--db", default=DEFAULT_DB)
    report.add_argument("--experiment", default=None, help="default: the most recently stored experiment")
    report.add_argument("--out", default=None, help="report directory (default: <db dir>/report/<experiment>)")
    report.add_argument("--examples", type=int, default=3, help="example generations per condition")
    report.set_defaults(func=cmd_report)
