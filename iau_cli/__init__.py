"""iau: Influence Approximation Unlearning for PyTorch classifiers.

The library works without the command-line layer; each command calls one function and renders
the plain result object it returns:

- ``iau_cli.runs.train`` / ``iau_cli.runs.restore`` — train into a checkpoint; rebuild model and data
- ``iau_cli.unlearning.unlearn`` — forget ids (methods in ``iau_cli.methods``)
- ``iau_cli.audit.audit`` — utility, membership inference, lineage, verdict
- ``iau_cli.bench.run_bench`` — methods × forget ratios × seeds
- ``iau_cli.ledger.refresh_ledger`` / ``show_ledger`` — the gradient ledger
"""

__version__ = "0.1.0"
