"""aiohttp without the two CA stores it loads when imported: they are loaded at first use.

aiohttp builds two SSL contexts at import (one verifying, one not), and each parses the
system's CA bundle: about 60 ms of CPU and 2 MB of memory in every `run`, a third of the
agent's start-up, even when the endpoint is plain http (the dev-server, a sidecar) or the
config names its own CA (`tls_ca_file`, a context of ours). `import_aiohttp` imports aiohttp
with those two loads put off until a context is first used for a handshake: the contexts,
their settings and what they verify are the same, only the moment of reading the bundle
moves (to the first https request, once; on the loop, as any other first connection's DNS).
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable
from typing import Any

_LOADING = threading.Lock()
_IMPORTING = threading.RLock()  # re-entered from inside the import: aiohttp is there
_load_default_verify_paths: Callable[[ssl.SSLContext], None] = (
    ssl.SSLContext.set_default_verify_paths
)
"""What a put-off load calls: what the class had when aiohttp was imported (someone's
override, installed after this module was imported, included), not just _ssl's."""


class LoadsOnFirstUse(ssl.SSLContext):
    """A context whose default verify paths are still to be loaded: the first wrap loads
    them, and the context becomes a plain `ssl.SSLContext` again."""

    def load_deferred(self) -> None:
        with _LOADING:
            if type(self) is LoadsOnFirstUse:
                _load_default_verify_paths(self)
                self.__class__ = ssl.SSLContext  # type: ignore[assignment]  # (so no super())

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.load_deferred()
        return ssl.SSLContext.wrap_socket(self, *args, **kwargs)  # not super(): see above

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.load_deferred()  # asyncio's TLS (and so aiohttp's) wraps a BIO pair
        return ssl.SSLContext.wrap_bio(self, *args, **kwargs)


def import_aiohttp() -> None:
    """Import aiohttp now, its default contexts loading the CA bundle at their first
    handshake. A no-op when aiohttp is already imported (its contexts are loaded then).

    While it imports, ``SSLContext.set_default_verify_paths`` is replaced for the whole
    process: a context any thread makes then becomes a `LoadsOnFirstUse` at once (so one
    wrapped before the import returns loads first, not verifying against an empty store),
    and a subclass of someone else's loads at once, as it would have. One import at a time:
    a second caller saving the first's replacement as "the original" would leave it
    installed for good."""
    global _load_default_verify_paths
    with _IMPORTING:
        if "aiohttp" in sys.modules:
            return
        own = vars(ssl.SSLContext).get("set_default_verify_paths")  # None: _ssl's, inherited
        _load_default_verify_paths = ssl.SSLContext.set_default_verify_paths
        ssl.SSLContext.set_default_verify_paths = _defer  # type: ignore[method-assign,assignment]
        try:
            import aiohttp.connector  # noqa: F401
        finally:
            if own is None:
                del ssl.SSLContext.set_default_verify_paths
            else:
                ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]


def _defer(context: ssl.SSLContext) -> None:
    """``set_default_verify_paths`` while aiohttp imports: a plain context loads at its
    first wrap, any other now."""
    if type(context) is ssl.SSLContext:
        context.__class__ = LoadsOnFirstUse
    else:  # a subclass of someone else's: loaded now, as it would have been
        _load_default_verify_paths(context)
