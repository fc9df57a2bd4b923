"""``[kubernetes]``: how the agent reaches the Kubernetes API for pod labels and annotations.

Used only when a source sets ``kubernetes = { metadata_from_api = true }`` (see
`agent.kube`). The defaults are the in-cluster ones: the API server from
``KUBERNETES_SERVICE_HOST``/``KUBERNETES_SERVICE_PORT``, the service account's token and CA
under ``/var/run/secrets/kubernetes.io/serviceaccount``, the node from ``NODE_NAME`` (the
downward API's ``spec.nodeName``).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from agent.config.polaris import loopback
from agent.schema import Duration, Section, Size, no_nul

SERVICE_ACCOUNT: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
_ANNOTATION_KEY_MAX = 253 + 1 + 63  # <DNS subdomain prefix>/<name>


class KubernetesApiConfig(Section):
    """`api_url`: ``""`` = in-cluster (``https://$KUBERNETES_SERVICE_HOST:$..._PORT``);
    ``http://`` only to loopback (``kubectl proxy``). `node_name`: ``""`` = ``$NODE_NAME``;
    only this node's pods are watched. `annotations`: the annotation keys copied into events
    (none by default: annotations hold configuration, sometimes secrets). `namespace_labels`:
    also watch namespaces for their labels. `startup_wait`: how long the first start waits for
    the pod list before reading files (lines read before a pod is known carry the path's
    fields only). `max_metadata_bytes`: the most a pod's labels and annotations add to an
    event (a pod's owner decides their size); keys past it are left out and counted."""

    api_url: str = ""
    node_name: str = ""
    token_file: str = f"{SERVICE_ACCOUNT}/token"
    ca_file: str = f"{SERVICE_ACCOUNT}/ca.crt"
    annotations: list[str] = Field(default=[], max_length=64)
    namespace_labels: bool = True
    startup_wait: Duration = 2.0
    max_metadata_bytes: Size = 16 * 1024

    @field_validator("api_url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not url:
            return url
        no_nul(url)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https:// URL (or http:// to loopback), or empty")
        if parts.scheme == "http" and not loopback(parts.hostname):
            raise ValueError(
                f"http:// to {parts.hostname} would send the service account token"
                " unencrypted; use https:// (http is allowed to loopback only)"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a bare base URL: no credentials, query or fragment")
        return url.rstrip("/")

    @field_validator("annotations")
    @classmethod
    def _keys(cls, keys: list[str]) -> list[str]:
        for index, key in enumerate(keys):
            if not key or len(key) > _ANNOTATION_KEY_MAX or any(c.isspace() for c in key):
                raise ValueError(f"[{index}] {key!r} is not an annotation key")
        return keys

    @field_validator("max_metadata_bytes")
    @classmethod
    def _room(cls, size: int) -> int:
        if size > 256 * 1024:
            raise ValueError("at most 256 KiB: the metadata is added to every event")
        return size
