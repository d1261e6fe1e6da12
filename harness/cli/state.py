"""What the group's options leave for every command: the project, overrides, the UI, and
how to reach the configuration and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config import Config, find_project_root, load_config
from harness.engine import Engine
from harness.errors import ConfigError
from harness.ui import UI


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
        return Engine.connect(config.docker_host)

    def configured_policies(self) -> dict[str, str]:
        """[tool.harness.policies] of the project, or none when there is no project."""
        try:
            root = find_project_root(self.project)
        except ConfigError:
            return {}
        return dict(load_config(root, self.overrides).policies)
