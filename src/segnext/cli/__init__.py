"""The `segnext` command line: one subcommand module per task (see main.COMMANDS)."""
