"""``python -m harness.compare A B``: the compare command on its own (see
:func:`harness.cli.compare.run`; a plain line starts as :mod:`harness.cli.launch` says)."""

from harness.cli.launch import compare_main

if __name__ == "__main__":
    compare_main()
