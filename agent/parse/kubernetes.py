"""Kubernetes: container log lines (CRI, Docker json-file) and where a pod's metadata comes from.

The kubelet writes ``/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`` and
links ``/var/log/containers/<pod>_<namespace>_<container>-<container id>.log`` to it. Neither
names nor namespaces may contain ``_`` (they are DNS labels/subdomains), which is what makes
the underscores safe separators. A sidecar sees no such path, so it reads the downward API's
environment variables instead (names in `SIDECAR_ENV`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, Protocol

import orjson

SIDECAR_ENV: Final = {
    "namespace": "POD_NAMESPACE",
    "pod": "POD_NAME",
    "pod_uid": "POD_UID",
    "node": "NODE_NAME",
    "container": "CONTAINER_NAME",
}
"""Downward-API variables a sidecar reads, e.g. ``valueFrom.fieldRef.fieldPath:
metadata.name`` -> POD_NAME, ``metadata.namespace`` -> POD_NAMESPACE, ``metadata.uid`` ->
POD_UID, ``spec.nodeName`` -> NODE_NAME; CONTAINER_NAME is set by hand (no fieldRef exists)."""

FIELD_PREFIX: Final = "k8s_"
"""Metadata fields are flat (``k8s_namespace``): a Polaris column per field, no JSON paths."""

_PODS_PATH = re.compile(
    r"/var/log/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_(?P<pod_uid>[^_/]+)/"
    r"(?P<container>[^/]+)/[^/]*$"
)
_CONTAINERS_PATH = re.compile(
    r"/var/log/containers/(?P<pod>[^_/]+)_(?P<namespace>[^_/]+)_(?P<container>[^/]+)-"
    r"(?P<container_id>[0-9a-f]{64})\.log$"
)
_ROTATION_SUFFIX = re.compile(r"(\.\d+|\.\d{8}(-\d{6})?)(\.gz)?$")
_CRI = re.compile(r"(\S+) (stdout|stderr) ([PF])(?: (.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PodMetadata:
    """What a log line's pod is; fields that could not be learned are None."""

    namespace: str | None = None
    pod: str | None = None
    pod_uid: str | None = None
    container: str | None = None
    container_id: str | None = None
    node: str | None = None

    def event_fields(self) -> dict[str, str]:
        """``{"k8s_namespace": ..., "k8s_pod": ...}`` for the fields that are known."""
        known = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {FIELD_PREFIX + name: value for name, value in known if value}

    def merged(self, other: PodMetadata) -> PodMetadata:
        """Self's known fields, completed by `other`'s."""
        return PodMetadata(*(getattr(self, f.name) or getattr(other, f.name) for f in fields(self)))


@dataclass(frozen=True, slots=True)
class PodDetails:
    """What the API server says of a pod beyond its path: its labels, the annotations the
    config asks for, and its namespace's labels (each bounded by `agent.kube`).

    They reach events as JSON objects, ``k8s_labels``, ``k8s_annotations`` and
    ``k8s_namespace_labels`` (as Fluent Bit's ``kubernetes.labels`` and Vector's
    ``kubernetes.pod_labels`` do): one column each whatever keys a pod's owner invents, and
    keys such as ``app.kubernetes.io/name`` kept as written.
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    namespace_labels: Mapping[str, str]

    def event_fields(self) -> dict[str, dict[str, str]]:
        """The non-empty ones, under their ``k8s_`` names."""
        found = {
            "labels": self.labels,
            "annotations": self.annotations,
            "namespace_labels": self.namespace_labels,
        }
        return {FIELD_PREFIX + name: dict(value) for name, value in found.items() if value}


class PodDirectory(Protocol):
    """The pods the API server told of (`agent.kube.PodCache`). `generation` changes whenever
    an answer of `details` may have: a reader asks again only then."""

    @property
    def generation(self) -> int: ...

    def details(self, pod: PodMetadata) -> PodDetails | None:
        """The pod's details, by uid when known, else by namespace and name; None when the
        API has not (yet) told of it."""
        ...


def metadata_from_path(path: str) -> PodMetadata | None:
    """Namespace, pod, uid and container from a kubelet log path; None for other paths."""
    match = _PODS_PATH.search(path) or _CONTAINERS_PATH.search(path)
    if match is None:
        return None
    return PodMetadata(**match.groupdict())


def metadata_from_env(environ: Mapping[str, str]) -> PodMetadata | None:
    """The downward-API variables of `SIDECAR_ENV`; None when none of them is set."""
    values = {name: environ.get(variable) or None for name, variable in SIDECAR_ENV.items()}
    if not any(values.values()):
        return None
    return PodMetadata(**values)


def container_key(path: str) -> str:
    """What stays the same when a container's log rotates: carry an assembler's state from
    the old file to the new one only when both have this key.

    ``/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log`` and its rotated
    ``0.log.20240101-120000`` share ``<ns>_<pod>_<uid>/<container>``; a
    ``/var/log/containers/`` link keeps its name; any other path loses a rotation suffix
    (``.1``, ``.20240101``, ``.gz``).
    """
    pods = re.search(r"/var/log/pods/([^/]+/[^/]+)/", path)
    if pods is not None:
        return pods.group(1)
    return _ROTATION_SUFFIX.sub("", path)


@dataclass(frozen=True, slots=True)
class ContainerLine:
    """One line as the container runtime wrote it; `partial` = more of it follows."""

    time: str
    stream: str
    partial: bool
    message: str


def decode_cri(text: str) -> ContainerLine | None:
    """``2016-10-06T00:17:09.669794202Z stdout F message`` (containerd, CRI-O)."""
    match = _CRI.match(text)
    if match is None:
        return None
    time, stream, tag, message = match.groups()
    return ContainerLine(time, stream, tag == "P", message or "")


def decode_docker(text: str) -> ContainerLine | None:
    """``{"log":"message\\n","stream":"stdout","time":"..."}``; a ``log`` without its
    newline is a partial line (Docker splits lines at 16 KiB)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict or not isinstance(value.get("log"), str):
        return None
    log: str = value["log"]
    partial = not log.endswith("\n")
    message = log if partial else log[:-1].removesuffix("\r")
    return ContainerLine(str(value.get("time", "")), str(value.get("stream", "")), partial, message)
