"""Pod labels and annotations from the Kubernetes API server (issue 15).

    api.py    the list/watch protocol over aiohttp: the token, the CA, bounded answers
    cache.py  `PodCache`: this node's pods and the namespaces, kept current by watches;
              what `agent.parse.kubernetes.PodDirectory` asks of it

Built by the runtime only when a source sets ``kubernetes = { metadata_from_api = true }``
(and only then imported); the readers of those sources ask it for their pod's details.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.config import Config
from agent.ops.events import Events

if TYPE_CHECKING:
    from agent.kube.cache import PodCache

__all__ = ["pod_cache"]


def pod_cache(config: Config, events: Events) -> PodCache | None:
    """The cache, when a source asks for the API's metadata; else None (no API access)."""
    if not any(s.kubernetes is not None and s.kubernetes.metadata_from_api for s in config.sources):
        return None
    from agent.kube.cache import PodCache  # only for the agents that use it

    return PodCache(config.kubernetes, events=events)
