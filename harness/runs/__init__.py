"""Runs: one experiment in a container (or a host's Python), its record, and verification.

``run`` starts an experiment and writes its record (``records``); ``staging`` packs the
project files that travel (``harness.project_files``) for a host that cannot see them;
``variations`` perturbs what must not matter; ``verify`` runs controls and variations and
judges them (``noise`` tells logs and time-stamped files from results);
``host_executor`` runs the same spec in a Python environment on this machine.
"""
