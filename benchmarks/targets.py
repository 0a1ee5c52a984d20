"""The issue's performance targets, checked against a bench.json's figures.

Each target is a ratio measured side by side in the same run:

    fused 8 modules, decode step        ≤ 1.3 × the fused 1-module step     (float and NF4)
    PEFT 8 adapters ÷ fused 8 modules   ≥ 2                                  (float; NF4 reported)
    mixed batch of 16 compositions      ≥ 4 × 16 separate generations        (tokens/s)
    training real-text tokens/s         ≥ 1.3 × reference (tweets), ≥ 1.0 × (IMDb)
    training peak memory                ≤ 1.0 × reference
    study shapes (GPU): PEFT 8 ÷ fused 8, fused 8 ÷ merged 8, mixed batch   reported, no bound
    floor (issue 15): 64-module bank, 3 active ≤ 1.15 × a 3-module bank; fused 8 ≤ 1.1 × the bare base;
                      PEFT 8 ÷ fused 8 ≥ 2; sampling loop tokens/s ≥ 0.9 / bare model step (batch 1)
"""

from __future__ import annotations


def _row(name: str, setting: str, value: float | None, bound: float | None, direction: str | None) -> dict:
    met = None
    if value is not None and bound is not None:
        met = value <= bound if direction == "<=" else value >= bound
    return {"target": name, "setting": setting, "measured": value,
            "needed": f"{direction} {bound:g}" if bound is not None else "reported", "met": met}


def _floor(floor: dict) -> list[dict]:
    if "ratios" not in floor:
        return []
    s, r = floor["setting"], floor["ratios"]
    setting = f"float base, batch {s['batch']}"
    loop = floor["decode_loop"]
    return [_row(f"{s['bank']}-module bank, {s['active']} active ÷ {s['active']}-module bank (step)", setting,
                 r["bank_over_fused_3"], 1.15, "<="),
            _row("fused 8-module step ÷ bare base step", setting, r["fused_8_over_base"], 1.1, "<="),
            _row("PEFT 8-adapter step ÷ fused 8-module step", setting, r["peft_8_over_fused_8"], 2.0, ">="),
            _row("fused 8, one A matmul per layer ÷ one per shared input (step)", setting,
                 r["separate_a_over_shared_a"], None, None),
            _row("sampling loop tokens/s × bare model step time", f"float base, batch 1, {s['loop_tokens']} "
                 "tokens, top-k 50 / top-p 0.95", loop["loop_over_step_bound"], 0.9, ">=")]


def check(figures: dict) -> list[dict]:
    rows = []
    composition = figures.get("composition") or {}
    for quantize, label in (("none", "float"), ("nf4", "NF4")):
        for key, block in (composition.get(quantize) or {}).items():
            ratios = block["ratios"].get("8")
            if ratios is None:
                continue
            setting = f"{label} base, batch {block['batch']}"
            rows.append(_row("fused 8-module step ÷ fused 1-module step", setting,
                             ratios["fused_over_fused_1"], 1.3, "<="))
            rows.append(_row("PEFT 8-adapter step ÷ fused 8-module step", setting, ratios["peft_over_fused"],
                             2.0 if quantize == "none" else None, ">=" if quantize == "none" else None))
    for shape, result in ((figures.get("study_shapes") or {}).get("shapes") or {}).items():
        for block in (result.get("bf16") or {}).values():
            ratios = block["ratios"].get("8")
            if ratios is not None:  # reported: the issue asks for these on a GPU, with no bound
                setting = f"{shape}, bf16, batch {block['batch']}"
                rows.append(_row("PEFT 8-adapter step ÷ fused 8-module step", setting, ratios["peft_over_fused"],
                                 None, None))
                rows.append(_row("fused 8-module step ÷ merged 8-module step", setting,
                                 ratios["fused_over_merged"], None, None))
        if "mixed_batch" in result:
            rows.append(_row("mixed batch of 16 ÷ 16 separate generations (tokens/s)", f"{shape}, bf16",
                             result["mixed_batch"]["ratio_batched_over_separate"], None, None))
    rows += _floor(figures.get("floor") or {})
    mixed = figures.get("mixed_batch") or {}
    if "ratio_batched_over_separate" in mixed:
        rows.append(_row("mixed batch of 16 ÷ 16 separate generations (tokens/s)",
                         f"{mixed['setting']['new_tokens']} new tokens each, float base",
                         mixed["ratio_batched_over_separate"], 4.0, ">="))
    training = figures.get("training") or {}
    for dataset, bound in (("tweets", 1.3), ("imdb", 1.0)):
        if dataset in training:
            result = training[dataset]
            rows.append(_row(f"training real-text tokens/s ÷ reference ({dataset})", "NF4, batch 8 × 64",
                             result["ratio_tokens_per_s"], bound, ">="))
            rows.append(_row(f"training peak memory ÷ reference ({dataset})", "NF4, batch 8 × 64",
                             result["ratio_peak_memory"], 1.0, "<="))
    serving = figures.get("serving") or {}
    if serving.get("ratio_short_over_long") is not None:
        short = serving["short_during_long"]
        rows.append(_row("short request's latency ÷ long ones' (arriving while they decode)",
                         f"{short['short_tokens']} tokens, {short['delay_s']:g} s after 4 × {short['long_tokens']}",
                         serving["ratio_short_over_long"], 0.35, "<="))
    if serving.get("ratio_mixed_p50_over_lone_p50") is not None:
        setting = serving["setting"]
        rows.append(_row("p50 latency under load ÷ a lone request's p50",
                         f"{setting['clients']} clients, mixed compositions, {setting['max_tokens']} tokens",
                         serving["ratio_mixed_p50_over_lone_p50"], 2.5, "<="))
    return rows
