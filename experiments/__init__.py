"""Built-in example experiments, one per framework, run by ``harness run`` inside the image.

Each module's ``train(output, seed, inputs, **parameters)`` writes its model and a
``metrics.json`` into ``output`` and returns the metrics. They rely on the runtime for
the global seeds, determinism switches and thread counts, and derive their own data from
``seed``; nothing they write depends on time, host or path, so two runs of the same image
and spec give the same bytes. Each finishes in seconds on one CPU thread.
"""
