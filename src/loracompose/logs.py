"""Console output of the command line: our own log lines always, library chatter only with -v.

Without -v a user sees what loracompose says (INFO and up) and errors; warnings that
libraries raise (transformers' FutureWarnings, bitsandbytes' note at import that
it falls back to its own CPU kernel when the optional `kernels` package cannot load
one) say nothing to a user of this tool, so they are hidden. Python warnings are
routed through logging (`logging.captureWarnings`), so -v shows them as log lines
and one level setting hides them.

Nothing here allows remote code: the bitsandbytes note is hidden, not acted on.
"""

from __future__ import annotations

import logging

# Loggers of libraries whose WARNING lines are noise on the command line (kept at ERROR without -v).
LIBRARY_LOGGERS = ("bitsandbytes", "transformers", "peft", "accelerate", "sentence_transformers",
                   "huggingface_hub", "py.warnings")
FORMAT = "%(message)s"


def configure_logging(verbose: bool) -> None:
    """Log to stderr: INFO and up; libraries' warnings only with `verbose` (and then DEBUG too).

    Call before the command imports its libraries: bitsandbytes logs its note at import.
    With `verbose` the libraries keep their own levels (WARNING, mostly).
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
    logging.captureWarnings(True)  # warnings.warn(...) → the "py.warnings" logger, at WARNING
    if not verbose:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def quiet_transformers(verbose: bool) -> None:
    """transformers keeps its own verbosity and progress bars ("Loading weights", ...): errors only, no bars.

    Separate from `configure_logging` because it imports transformers (about 0.5 s here), which
    the parser and `--help` do not need.
    """
    if verbose:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
