"""The command-line layer: one module per subcommand, the root app, and the single error boundary."""
