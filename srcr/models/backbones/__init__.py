"""Backbones registered with timm's model registry."""
