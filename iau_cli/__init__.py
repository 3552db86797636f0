"""iau: Influence Approximation Unlearning for PyTorch classifiers.

The library is importable without the command-line layer: ``iau_cli.api`` holds the functions the
CLI calls (train, unlearn, audit, bench), each returning a plain result object.
"""

__version__ = "0.1.0"
