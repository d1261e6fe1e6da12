"""`harness k8s render` and `harness collect` of its Jobs: experiments as Kubernetes Jobs.

One concern a module, and importers import the module they need:

- :mod:`.settings`: where and how the Jobs run, [tool.harness.k8s] under the command line;
- :mod:`.archive`: the project's files as a deterministic tarball for the ConfigMap;
- :mod:`.manifests`: the rendered documents (ConfigMap, NetworkPolicy, Jobs, gather Pod),
  each Job's container locked down as :mod:`harness.container` plans it;
- :mod:`.job_output`: the run record of what one Job left on the claim.
"""
