"""``python -m harness.runtime SPEC``: the command the host starts the container with."""

from harness.runtime.runner import main

raise SystemExit(main())
