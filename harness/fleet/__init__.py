"""Runs on more than one machine: other Docker hosts, Kubernetes and CI.

``hosts`` reads ``[tool.harness.hosts]``; ``shipping`` gets the control's image onto
another engine; ``crosshost`` runs and judges across hosts; ``k8s`` (a package) runs
experiments as Jobs; ``ci_github`` writes the workflow whose records ``collect`` gathers
into one verification.
"""
