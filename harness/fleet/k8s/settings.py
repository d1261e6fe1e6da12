"""Where and how `harness k8s render`'s Jobs run: [tool.harness.k8s] under the command line.

Every value is checked here, before anything is rendered, against what Kubernetes accepts
(label values, DNS names) and what reproducibility needs (an image pinned by digest), so
a render never writes a manifest that the cluster would refuse or run on other bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.errors import ConfigError

TABLE = "[tool.harness.k8s]"
DEFAULT_CLAIM = "harness-records"
HOSTNAME_LABEL = "kubernetes.io/hostname"
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_DIGEST_REFERENCE = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class Settings:
    """Where and how the Jobs run: the command line over [tool.harness.k8s]."""

    image: str
    image_id: str | None = None
    variant: str | None = None
    nodes: tuple[str, ...] = ()
    selectors: Mapping[str, str] = field(default_factory=dict)
    gpus: int = 0
    claim: str = DEFAULT_CLAIM
    namespace: str | None = None

    @property
    def digest(self) -> str:
        return self.image.rsplit("@", 1)[1]


def settings_from(
    table: Mapping[str, Any],
    *,
    image: str,
    image_id: str | None = None,
    variant: str | None = None,
    nodes: Sequence[str] = (),
    selectors: Sequence[str] = (),
    gpus: int | None = None,
    claim: str | None = None,
    namespace: str | None = None,
) -> Settings:
    """[tool.harness.k8s] (shaped by the schema) and the command line; the command line
    wins. The values chosen are checked here, whichever side they came from."""
    if not _DIGEST_REFERENCE.fullmatch(image):
        raise ConfigError(
            f"image {image!r} is not pinned by digest, so nodes could pull different bytes",
            "push it (docker push REF) and pass REF@sha256:<digest> "
            "(`docker buildx imagetools inspect REF` shows the digest)",
        )
    if image_id is not None and not IMAGE_ID.fullmatch(image_id):
        raise ConfigError(
            f"--image-id {image_id!r} is not sha256:<64 hex digits>",
            "pass the output of `docker image inspect --format '{{.Id}}' REF`",
        )
    chosen = _check_nodes(list(dict.fromkeys(nodes or table.get("nodes", []))))
    merged = {**table.get("selectors", {}), **_key_values(selectors)}
    for key, value in merged.items():
        _check_selector(key, value)
    # Never negative: the schema bounds the table's, click's IntRange the flag's.
    chosen_gpus: int = table.get("gpus", 0) if gpus is None else gpus
    chosen_claim = claim if claim is not None else table.get("claim", DEFAULT_CLAIM)
    if not (len(chosen_claim) <= 253 and _DNS_SUBDOMAIN.fullmatch(chosen_claim)):
        raise ConfigError(
            f"claim {chosen_claim!r} is not a valid PersistentVolumeClaim name",
            "use lowercase letters, digits, '-' and '.', as in harness-records",
        )
    chosen_namespace = namespace if namespace is not None else table.get("namespace")
    if chosen_namespace is not None and not (
        len(chosen_namespace) <= 63 and _DNS_LABEL.fullmatch(chosen_namespace)
    ):
        raise ConfigError(
            f"namespace {chosen_namespace!r} is not a valid namespace name",
            "use lowercase letters, digits and '-', as in ml-runs",
        )
    return Settings(
        image=image,
        image_id=image_id,
        variant=variant,
        nodes=tuple(chosen),
        selectors=merged,
        gpus=chosen_gpus,
        claim=chosen_claim,
        namespace=chosen_namespace,
    )


def _check_nodes(nodes: list[str]) -> list[str]:
    if not nodes:
        raise ConfigError(
            "no node to run on",
            f'pass --node NODE (see `kubectl get nodes`) or set nodes = ["NODE"] in {TABLE}',
        )
    for node in nodes:
        if not (len(node) <= 63 and _LABEL_VALUE.fullmatch(node)):
            raise ConfigError(
                f"node {node!r} is not a valid {HOSTNAME_LABEL} label value",
                "give the node's kubernetes.io/hostname label "
                "(`kubectl get nodes -L kubernetes.io/hostname`)",
            )
    return nodes


def _key_values(pairs: Iterable[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise ConfigError(
                f"--selector {pair!r} is not KEY=VALUE", "write --selector disktype=ssd"
            )
        values[key] = value
    return values


def _check_selector(key: str, value: str) -> None:
    if key == HOSTNAME_LABEL:
        raise ConfigError(
            f"the selector {HOSTNAME_LABEL} is set by the node of each Job",
            "choose the nodes with --node (or nodes in [tool.harness.k8s])",
        )
    prefix, slash, name = key.rpartition("/")
    valid_prefix = not slash or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.fullmatch(prefix)))
    if not (valid_prefix and len(name) <= 63 and _LABEL_NAME.fullmatch(name)):
        raise ConfigError(
            f"selector key {key!r} is not a valid label name",
            "write it as NAME or PREFIX/NAME, as in nvidia.com/gpu.product",
        )
    if not (len(value) <= 63 and _LABEL_VALUE.fullmatch(value)):
        raise ConfigError(
            f"selector value {value!r} of {key} is not a valid label value",
            "use at most 63 letters, digits, '-', '_' and '.'",
        )
