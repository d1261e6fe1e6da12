"""Images: locking the pins, the base, building bit for bit, and checking a rebuild.

The order a build follows: ``lock`` (hashed constraints per variant), ``base`` (the base
image, fixed by content), ``build`` (context from ``dockerfiles``, wheels from
``wheelcache``, harness's own wheel from ``runtime_wheel``), then ``config`` and
``filesystem`` rewrite the image so that two builds of one input are one image ID, which
``rebuild`` proves. ``built`` remembers what harness built on each engine; ``gc``
finds the project's images that nothing names any more.
"""
