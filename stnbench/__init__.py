"""stnbench: a reference benchmark suite for Spatial Transformer Networks."""

__version__ = "0.1.0"
