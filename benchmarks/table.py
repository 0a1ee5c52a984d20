"""Markdown tables from a bench.json: the targets, then one table per figure.

    python -m benchmarks.table bench.json            # print
    python -m benchmarks.table bench.json --out bench.md

Numbers are medians; brackets hold the interquartile range.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _m(stat: dict | None, digits: int = 1) -> str:
    if not stat:
        return "–"
    return f"{stat['median']:.{digits}f} [{stat['iqr']:.{digits}f}]"


def _r(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _targets(targets: list[dict]) -> list[str]:
    verdict = {True: "✔ met", False: "✘ missed", None: "reported"}
    return _table(["target", "setting", "measured ratio", "needed", ""],
                  [[t["target"], t["setting"], _r(t["measured"]), t["needed"], verdict[t["met"]]] for t in targets])


def _decode_block(block: dict, label: str) -> list[str]:
    """One decode-step table (rows N) from a `composition.time_configs` block."""
    configs, ratios = block["configs"], block["ratios"]
    lines = ["", f"Decode step, {label}, batch {block['batch']} (ms; generation tokens/s):", ""]
    rows = []
    for n, r in ratios.items():
        rows.append([n, _m(configs["base"]["step_ms"]), _m(configs[f"fused-{n}"]["step_ms"]),
                     _m(configs[f"peft-{n}"]["step_ms"]), _m(configs[f"merged-{n}"]["step_ms"]),
                     _r(r["fused_over_fused_1"]), _r(r["peft_over_fused"]), _r(r.get("fused_over_merged")),
                     _m(configs[f"fused-{n}"]["tokens_per_s"]), _m(configs[f"peft-{n}"]["tokens_per_s"])])
    return lines + _table(["N", "base", "fused", "PEFT", "merged", "fused ÷ fused-1", "PEFT ÷ fused",
                           "fused ÷ merged", "fused tok/s", "PEFT tok/s"], rows)


def _composition(figure: dict) -> list[str]:
    lines = []
    for quantize, label in (("none", "dense float32"), ("nf4", "NF4")):
        for block in (figure.get(quantize) or {}).values():
            lines += _decode_block(block, f"{label} base")
    return lines


def _mixed(figure: dict, label: str = "") -> list[str]:
    rows = figure["tokens_per_s"]
    return ["", f"Mixed batch{label}, {figure['setting']['requests']} requests × {figure['setting']['new_tokens']} "
                "tokens (tokens/s):", ""] + _table(
        ["batched", "separate", "batched ÷ separate"],
        [[_m(rows["batched"]), _m(rows["separate"]), _r(figure["ratio_batched_over_separate"])]])


def _study_shapes(figure: dict) -> list[str]:
    setting = figure["setting"]
    lines = []
    for name, shape in figure["shapes"].items():
        if "skipped" in shape:
            lines += ["", f"{name}: skipped — {shape['skipped']}."]
            continue
        size = f"{shape['parameters'] / 1e9:.2f}B" if shape["parameters"] > 1e8 else f"{shape['parameters']:,}"
        label = f"{name} ({size} parameters, random weights), {setting['dtype'].replace('torch.', '')} on " \
                f"{setting['device']}{' — dry run, tiny shape' if setting['dry_run'] else ''}"
        for block in shape["bf16"].values():
            lines += _decode_block(block, label)
        lines += _mixed(shape["mixed_batch"], f", {name}")
    return lines


def _training(figure: dict) -> list[str]:
    rows = []
    for dataset in ("tweets", "imdb"):
        if dataset in figure:
            d = figure[dataset]
            rows.append([dataset, _m(d["project"]["real_tokens_per_s_per_step"]),
                         _m(d["reference"]["real_tokens_per_s_per_step"]), _r(d["ratio_tokens_per_s"]),
                         f"{d['project']['peak_memory_mb']:.0f}", f"{d['reference']['peak_memory_mb']:.0f}",
                         _r(d["ratio_peak_memory"])])
    return ["", "Training, real-text tokens/s per step and peak memory (MB):", ""] + _table(
        ["data", "project (packed)", "reference (padded)", "ratio", "project MB", "reference MB", "ratio"], rows)


def _evaluation(figure: dict) -> list[str]:
    rows = [[name, _m(j["batched_texts_per_s"]), _m(j["one_by_one_texts_per_s"]),
             _r(j["ratio_batched_over_one_by_one"])] for name, j in figure["judges"].items()]
    ppl = figure["perplexity"]
    rows.append([f"perplexity ({figure['setting']['perplexity_model']})", _m(ppl["batch_8_texts_per_s"]),
                 _m(ppl["batch_1_texts_per_s"]), _r(ppl["ratio_batch_8_over_batch_1"])])
    return ["", "Evaluation (texts/s):", ""] + _table(["scorer", "batched", "one by one", "ratio"], rows)


def _serving(figure: dict) -> list[str]:
    if "skipped" in figure:
        return ["", f"Serving: skipped — {figure['skipped']}."]
    def number(value):
        return "–" if value is None else f"{value:.2f}"

    rows = [[name, number(figure[name].get("requests_per_s")), number(figure[name].get("p50_s")),
             number(figure[name].get("p95_s")), f"{figure[name].get('ok')}/{figure[name].get('requests')}"]
            for name in ("mixed", "shared", "mixed_all_rows") if name in figure]
    setting = figure["setting"]
    return ["", f"Serving (loopback, {setting['clients']} clients, {setting['requests']} requests × "
                f"{setting['max_tokens']} tokens):", ""] + _table(
        ["compositions", "requests/s", "p50 s", "p95 s", "answered"], rows) + [
        "", f"mixed ÷ shared requests/s: {_r(figure.get('ratio_mixed_over_shared_requests_per_s'))}"] + \
        _serving_latency(figure)


def _serving_latency(figure: dict) -> list[str]:
    """The continuous-batching latencies: a lone request, and a short one arriving while long ones decode."""
    if "lone" not in figure or "short_during_long" not in figure:
        return []
    lone, short = figure["lone"], figure["short_during_long"]
    clients, ratio = figure["setting"]["clients"], _r(figure.get("ratio_mixed_p50_over_lone_p50"))
    return ["", f"Serving latency: lone request p50 {lone['p50_s']:.2f} s ({lone['ok']} requests, 1 client); "
                f"{clients}-client mixed p50 ÷ lone p50: {ratio} "
                f"({_r(figure.get('ratio_mixed_all_rows_p50_over_lone_p50'))} with {clients} batch rows); "
                f"a {short['short_tokens']}-token request {short['delay_s']:g} s after four "
                f"{short['long_tokens']}-token ones: {short['short_s']:.2f} s against their "
                f"{short['long_mean_s']:.2f} s ({_r(figure.get('ratio_short_over_long'))})."]


def _floor(figure: dict) -> list[str]:
    s, steps, loop = figure["setting"], figure["step_ms"], figure["decode_loop"]
    lines = ["", f"Floor (issue 15): decode step, {s['base']} base, batch {s['batch']} (ms):", ""]
    lines += _table(list(steps), [[_m(stat) for stat in steps.values()]])
    return lines + ["", f"Sampling loop, batch 1, {s['loop_tokens']} tokens ({s['loop_sampling']}):", ""] + _table(
        ["bare model step ms", "loop step ms", "loop tokens/s", "1 / bare step", "loop ÷ bound"],
        [[_m(loop["bare_step_ms"]), _m(loop["loop_step_ms"]), _m(loop["loop_tokens_per_s"]),
          f"{loop['bound_tokens_per_s']:.1f}", _r(loop["loop_over_step_bound"])]])


RENDER = {"composition": _composition, "mixed_batch": _mixed, "training": _training, "serving": _serving,
          "evaluation": _evaluation, "study_shapes": _study_shapes, "floor": _floor}


def render(bench: dict) -> str:
    meta = bench["meta"]
    gpu = f"{meta['cuda']} with " if meta.get("cuda") else ""
    lines = [f"Measured {meta['date'][:10]} on {gpu}{meta['cpu']} ({meta['cores']} cores, {meta['memory_gib']} GiB), "
             f"torch {meta['versions']['torch']}, transformers {meta['versions']['transformers']}, "
             f"peft {meta['versions']['peft']}, bitsandbytes {meta['versions']['bitsandbytes']}, "
             f"commit {str(meta['git_commit'])[:12]}; model {bench['settings']['model']}.", ""]
    lines += _targets(bench.get("targets", []))
    for name, render_figure in RENDER.items():
        figure = bench["figures"].get(name)
        if figure is None:
            continue
        if "failed" in figure:
            lines += ["", f"{name}: failed — {figure['failed']}"]
        else:
            lines += render_figure(figure)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = render(json.loads(args.bench.read_text()))
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
