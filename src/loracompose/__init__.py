"""loracompose — plug-and-play attribute-controlled generation by composing QLoRA modules."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("loracompose")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from loracompose.errors import LoraComposeError  # noqa: E402

__all__ = ["LoraComposeError", "__version__"]
