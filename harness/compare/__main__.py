"""``python -m harness.compare A B``: the compare command on its own (see
:func:`harness.cli.compare.run`)."""

from harness.cli.compare import main

if __name__ == "__main__":
    main()
