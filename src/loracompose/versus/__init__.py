"""Side by side: every way to steer toward a target, on the same prompts, sampling and judges, in one run.

    loracompose versus [--model smollm2-135m] [--prompts pplm35,neutral] [--seeds 1,2,3] --out runs/versus

conditions.py  what runs (base, prompting, activation addition, DExperts, model arithmetic,
               the module strategies) across each method's strength sweep
generate.py    one generations file per (prompt set, condition, direction), cached
score.py       every text's judgements (panel, independent judge, VADER, lexicons), perplexity,
               relevance and non-words, cached per file
table.py       one table per prompt set with bootstrap intervals, and the frontier plot
"""
