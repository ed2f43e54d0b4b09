"""trainsh's version: a leaf, so `train --version` and the package's face share it."""

__version__ = "0.1.0"
