"""The Typer command-line interface: thin modules that parse, build and run."""
