"""The command line: every click command and option, over thin calls into the packages below.

This is the only package that imports click. Nothing below it imports the command line, so
the pipeline can be driven from Python (tests, notebooks, other tools) without it.
"""
