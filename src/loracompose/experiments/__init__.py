"""Experiments: the study's grid as one command, cached and resumable, with a report.

    spec.py       YAML experiment specs, validated (every error names its field), into typed settings
    validate.py   the checks of YAML values that spec.py and tasksets.py share (a leaf module)
    tasksets.py   built-in task sets (sentiment, topic, multi): modules to train and conditions
    cache.py      content hashes of stage inputs and of each stage's code; finished stages on disk
    stages.py     train, compose, generate, evaluate: one cached function each
    plan.py       a spec → the jobs of its grid, with their dependencies
    store.py      results in SQLite (one row per model × task × condition × target × seed)
    executors.py  in-process and Ray
    runner.py     `loracompose run`: plan, execute, store; progress bars and a log file
    report*.py    `loracompose report`: Markdown + HTML tables, plots, examples
"""
