"""Experiments: the study's grid as one command, cached and resumable, with a report.

    spec.py       YAML experiment specs, validated (every error names its field)
    tasksets.py   built-in task sets (sentiment, topic, multi): modules to train and conditions
    prompts.py    prompt sets: PPLM and held-out openings of each dataset's test split
    cache.py      content hashes of stage inputs; finished stages on disk
    stages.py     train, compose, generate, evaluate: one cached function each
    plan.py       a spec → the jobs of its grid, with their dependencies
    store.py      results in SQLite (one row per model × task × condition × target × seed)
    executors.py  in-process and Ray
    runner.py     `loracompose run`: plan, execute, store; progress bars and a log file
    report*.py    `loracompose report`: Markdown + HTML tables, plots, examples
"""
