"""What a user would pick instead of modules, run with the same sampling as the modules.

    prompting.py    an instruction through the model's chat template ("Continue this text in a
                    clearly negative tone: …"), the continuation starting with the prompt
    actadd.py       activation addition: the mean difference of residual activations between the
                    target's and the opposite label's texts, added at one layer
    arithmetic.py   model arithmetic: log p(x | plain) + S·(log p(x | instructed) − log p(x | plain))

DExperts' logit contrast is the `logit-contrast` steer strategy (`steer.py`). These are
baselines of the side-by-side evaluation (`loracompose versus`), not steering features.
"""
