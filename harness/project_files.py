"""Which of the project's files travel to an experiment, however it runs.

The rule is the one `harness run` has always applied on this machine: its container
bind-mounts the project folder, so the experiment sees every file there that the
container's user can read, tracked by git or not, ignored or not. The copies made for
other places must show the same files, or a run on another host (`--hosts`, by volume,
see :mod:`harness.runs.staging`) or in a Kubernetes Job (the ConfigMap's archive) would
run other code than the local one, and `harness lint` would judge other code again.

So a file travels unless:

- it lies in harness's own state (``.harness``, which the local container hides behind
  an empty tmpfs), version control (``.git``), bytecode or a tool's cache: no
  experiment's business, large, and different on each machine;
- it lies in a virtual environment, found by its ``pyvenv.cfg`` whatever its name: the
  image holds the experiment's packages, not the project;
- others may not read it (a private key, a token): the container's user, which is not
  this machine's, could not read it through the bind mount either.

Links are listed as they are and never entered, so no walk leaves the project through
one. How a link travels is the carrier's choice: a volume carries it as a link, as the
bind mount shows it; the Kubernetes archive holds files only, so :func:`files` gives a
link to a file inside the project as that file and leaves any other link behind.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.config import STATE_FOLDER

# Never sent: harness's records, VCS data, tool caches.
SKIPPED = frozenset(
    {STATE_FOLDER.name, ".git", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)


def walk(folder: Path, *, skip_state: bool = True) -> Iterator[Path]:
    """Every file, folder and link under ``folder`` that travels, sorted, parents before
    children. ``skip_state=False`` keeps harness's state, caches and environments (for a
    folder given as an input, which travels whole)."""
    for path in sorted(folder.iterdir()):
        if skip_state and (path.name in SKIPPED or (path / "pyvenv.cfg").is_file()):
            continue
        if not readable_by_others(path):
            continue
        yield path
        if path.is_dir() and not path.is_symlink():
            yield from walk(path, skip_state=skip_state)


def files(root: Path, say: Callable[[str], None] = lambda _: None) -> list[str]:
    """The files that travel, as sorted POSIX paths relative to ``root``: a link counts as
    the file it points to when that lies inside ``root``; other links are left out, and
    ``say`` hears of each."""
    found = []
    resolved_root = root.resolve()
    for path in walk(root):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            if not _links_to_a_travelling_file(path, resolved_root):
                say(f"not shipping {relative}: a link to a folder, or to outside the project")
                continue
        elif not path.is_file():
            continue  # a folder (listed by its files), a socket, a device or a pipe
        found.append(relative)
    return sorted(found)


def _links_to_a_travelling_file(link: Path, resolved_root: Path) -> bool:
    """Whether a link leads to a file that would travel itself: inside the project, not in
    harness's state or git's database, and readable by others."""
    target = link.resolve()
    if not (target.is_file() and target.is_relative_to(resolved_root)):
        return False
    inside = target.relative_to(resolved_root).parts
    return not any(part in SKIPPED for part in inside) and readable_by_others(target)


def readable_by_others(path: Path) -> bool:
    """What the container's user could read through a bind mount: only what others may."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return True
    needed = 0o005 if stat.S_ISDIR(mode) else 0o004
    return mode & needed == needed
