"""Starter modules shipped with loracompose (see configs/starter.yaml)."""
