"""SLURM clusters as hosts: each run a batch job, run on a node through the host executor.

Most GPUs researchers can use sit in SLURM clusters, where no Docker daemon is offered. A
host of kind ``slurm`` under ``[tool.harness.hosts]`` (:mod:`.settings`) submits each run
as a short batch script (:mod:`.script`); on the node it makes (or reuses) a Python
environment from the project's constraints with every hash checked, and runs the
experiment through harness's runtime, as ``--executor host`` does. harness waits for the
job through ``scontrol`` (:mod:`.scheduler`), then brings the job's files back as it takes
in any upload, checked (:mod:`.jobs`). Verification across nodes counts the nodes SLURM
names (:mod:`.across`); :mod:`.commands` is where `run` and `verify` hand over to it.
"""
