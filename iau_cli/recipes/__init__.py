"""What each command does, as a library call that returns a plain result: train, unlearn, audit,
ledger, bench, demo, delete-rows. Imports everything below it; never the CLI (typer, rich)."""
