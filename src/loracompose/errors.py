"""The one exception type that carries a message meant for the user."""


class LoraComposeError(Exception):
    """Bad input or a missing resource.

    The message names the problem and what would be accepted; the CLI prints it
    as one line and exits non-zero, without a traceback.
    """
