"""iau: Influence Approximation Unlearning for PyTorch classifiers.

The library works without the command-line layer; each command calls one function and renders
the plain result object it returns:

- ``iau_cli.recipes.train.train`` / ``iau_cli.recipes.train.restore`` — train into a checkpoint; rebuild model and data
- ``iau_cli.recipes.unlearn.unlearn`` — forget ids (methods in ``iau_cli.core.methods``)
- ``iau_cli.recipes.audit.audit`` — utility, membership inference, lineage, verdict
- ``iau_cli.recipes.bench.run_bench`` — methods × forget ratios × seeds
- ``iau_cli.recipes.ledger.refresh_ledger`` / ``show_ledger`` — the gradient ledger
"""

__version__ = "0.1.0"
