"""The `deltaflow` command line."""
