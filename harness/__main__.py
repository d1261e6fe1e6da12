"""`python -m harness` is the `harness` command."""

from harness.launch import main

main()
