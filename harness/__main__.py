"""`python -m harness` is the `harness` command."""

from harness.cli.launch import main

main()
