"""iau: Influence Approximation Unlearning for PyTorch classifiers.

The library works without the command-line layer; each command calls one function and renders
the plain result object it returns. The functions below write their outputs; the commands call
their ``make_*`` halves (``make_unlearned``, ``make_trained``, ``make_refreshed``; delete-rows:
``plan_deletion``), which return the new file in ``result.child`` and write nothing, and publish it
with their other outputs. Layers: README "Development".

- ``iau_cli.recipes.train.train`` / ``iau_cli.recipes.train.restore`` — train a checkpoint; rebuild model and data
- ``iau_cli.recipes.unlearn.unlearn`` — forget ids (methods: ``iau_cli.core.methods.catalog``)
- ``iau_cli.recipes.audit.audit`` — utility, membership inference, lineage, verdict
- ``iau_cli.recipes.bench.run_bench`` — methods × forget ratios × seeds
- ``iau_cli.recipes.ledger.refresh_ledger`` / ``show_ledger`` — the gradient ledger
"""

__version__ = "0.1.0"
