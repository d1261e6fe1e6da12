"""What the group's options leave for every command: the project, overrides, the UI, and
how to reach the configuration and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import Config, find_project_root, load_config
from harness.errors import ConfigError
from harness.ui import UI

if TYPE_CHECKING:
    from harness.engine import Engine

# Where the group leaves, for `harness compare`, how to read the project's
# [tool.harness.policies] (a callable: only a comparison that needs them reads them).
POLICIES_KEY = "harness.compare.policies"


@dataclass
class State:
    """What the group's options leave for the commands."""

    project: Path | None
    overrides: dict[str, str | None]
    debug: bool
    ui: UI

    def config(self, **overrides: str | None) -> Config:
        return load_config(self.project, {**self.overrides, **overrides})

    def engine(self, config: Config) -> Engine:
        # Imported here: the docker SDK is slow to import, and most commands that do not
        # reach the engine (compare, lint, config) never call this.
        from harness.engine import Engine  # noqa: PLC0415

        return Engine.connect(config.docker_host)

    def configured_policies(self) -> dict[str, str]:
        """[tool.harness.policies] of the project, or none when there is no project."""
        try:
            root = find_project_root(self.project)
        except ConfigError:
            return {}
        return dict(load_config(root, self.overrides).policies)
