"""The math: models, the training loop, gradient kernels, metrics and the audit's statistics,
reference statistics and the unlearning methods. Imports the base modules, :mod:`iau_cli.io` and
itself; never a recipe or the CLI."""
