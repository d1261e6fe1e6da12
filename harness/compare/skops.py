"""scikit-learn models saved with skops (``.skops``), compared by what they hold.

A skops file is a zip of ``schema.json`` (the object tree: classes, parameters, and which
member holds each array) and one ``.npy`` member per array. skops names each array
member, and marks each object in the schema (``__id__``), by the object's ``id()``: a
memory address, new in every process. Two saves of the same fitted model therefore share
neither member names nor schema, and the zip stamps the clock into every entry.

So the schema is compared with each ``__id__`` replaced by the order in which that id
first appears (two objects share an id exactly when they did in the model, which is
what skops records it for) and each array member named by the place in the schema that
refers to it (``content/content/coef_``); the arrays are then compared under those names,
value by value under the artifact's policy, as ``.npz`` members are. Nothing is loaded
with skops (which could construct the classes the schema names): only JSON and ``.npy``
headers are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.compare.container import Container, compare_containers
from harness.compare.jsonmetrics import check_json_size, loads_json
from harness.compare.model import ArtifactResult
from harness.compare.npy import check_object_members, npz_container, open_zip
from harness.compare.policy import Policy
from harness.errors import ArtifactError

SCHEMA = "schema.json"


def skops_container(path: Path) -> Container:
    """The model's schema without its process-bound ids, and its arrays by schema place."""
    members = npz_container(path)
    with open_zip(path) as archive:
        try:
            info = archive.getinfo(SCHEMA)
        except KeyError:
            raise ArtifactError(
                f"{path} has no {SCHEMA}, so it is not a skops file",
                hint="save models with skops.io.dump, or name the file for what it is",
            ) from None
        check_json_size(info.file_size, f"{path}:{SCHEMA}")
        try:
            schema = loads_json(archive.read(info))
        except (ValueError, RecursionError):
            raise ArtifactError(f"{path}:{SCHEMA} is not valid JSON") from None
    places: dict[str, str] = {}
    container = Container()
    container.values[SCHEMA] = _canonical(schema, (), places, {})
    for key, source in members.tensors.items():
        container.tensors[places.get(f"{key}.npy", f"member {key}.npy")] = source
    for key, value in members.values.items():
        member = key.removeprefix("member ") if key.startswith("member ") else f"{key}.npy"
        if member != SCHEMA:
            container.values[places.get(member, f"member {member}")] = value
    return container


def _canonical(
    node: Any, where: tuple[str, ...], places: dict[str, str], ids: dict[int, int]
) -> Any:
    """``node`` with ids by first appearance and member names by the place naming them."""
    if isinstance(node, list):
        return [_canonical(item, (*where, str(n)), places, ids) for n, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    canonical: dict[str, Any] = {}
    for key, value in node.items():
        if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
            canonical[key] = ids.setdefault(value, len(ids))
        elif key == "file" and isinstance(value, str):
            canonical[key] = places.setdefault(value, "/".join(where) or "(root)")
        else:
            canonical[key] = _canonical(value, (*where, str(key)), places, ids)
    return canonical


def compare_skops(
    a: Path, b: Path, result: ArtifactResult, policy: Policy, prefix: int | None
) -> None:
    container_a, container_b = skops_container(a), skops_container(b)
    check_object_members(container_a, container_b, str(b))
    compare_containers(result, container_a, container_b, policy, None)
