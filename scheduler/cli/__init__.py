"""The `scheduler` command line: thin commands over service functions."""
