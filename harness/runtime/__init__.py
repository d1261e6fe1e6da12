"""The part of harness that runs inside the image: ``python -m harness.runtime SPEC``.

The image holds the experiment frameworks and harness installed without its host
dependencies (click, docker, rich), so every module of this package imports the standard
library only. numpy, torch and tensorflow are imported lazily, and only when the experiment
imported them first: a torch experiment must not pay seconds for importing TensorFlow.

Modules:

- ``determinism``: the environment variables the host sets before the interpreter starts
  (the host imports ``environment`` from there, so it stays import-light).
- ``hooks``: a post-import hook that runs a callback right after a module is first imported.
- ``frameworks``: each framework's seeds and switches, applied on import and read back.
- ``fingerprint``: the hardware and software the run saw.
- ``spec``: the run specification the host writes.
- ``runner``: runs the experiment and writes ``runtime.json``.
- ``startup`` (with ``site/sitecustomize.py``): seeds and switches every Python process a
  ``command`` starts, and collects what each read back.
- ``explain``: the line of a failed command's output that says why.
- ``node_statement``: what a SLURM node saw of a run, for the node's own key to sign.

This module imports nothing, so that importing ``harness.runtime.determinism`` on the host
costs nothing beyond that module.
"""
