"""Composition of modules: the methods' registry (`methods`), the one planner (`plan`), fused output-level
layers (`fused`), weight-level merges (`weight_methods`, `merge`), export and learnt weights."""

from loracompose.compose.methods import (  # noqa: F401  (the package's public names)
    BASE_MEMBER, METHODS, SERVED_METHODS, WEIGHT_METHODS, Method, get_method, normalized, parse_composition,
)
