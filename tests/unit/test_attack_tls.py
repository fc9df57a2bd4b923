"""Attacks on `agent.ship.tls.import_aiohttp`: while aiohttp imports, every
``SSLContext.set_default_verify_paths`` in the process is put off, whoever calls it. Each
scenario runs in a child Python (this one imported aiohttp long ago) whose CA bundle is one
certificate, named by SSL_CERT_FILE."""

from __future__ import annotations

from pathlib import Path

from tests.support.certs import run_trusting, self_signed

DURING_THE_IMPORT = """\
import importlib.abc, ssl, sys
from agent.ship.tls import import_aiohttp

class Theirs(ssl.SSLContext):
    pass  # a library's own subclass (its class is not ours to swap)

class WhileAiohttpImports(importlib.abc.MetaPathFinder):
    '''Another thread's HTTPS client, simulated: while aiohttp's connector is being
    imported (the window), a default context is made and wrapped for a handshake.'''

    def find_spec(self, name, path, target=None):
        if name == "aiohttp.connector":
            sys.meta_path.remove(self)
            context = ssl.create_default_context()
            context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.org")
            print("ca_at_handshake", context.cert_store_stats()["x509_ca"])
            theirs = Theirs(ssl.PROTOCOL_TLS_CLIENT)
            theirs.load_default_certs()
            print("subclass_kept", type(theirs) is Theirs)
            print("subclass_ca", theirs.cert_store_stats()["x509_ca"])
        return None

sys.meta_path.insert(0, WhileAiohttpImports())
import_aiohttp()
print("patched_after", "set_default_verify_paths" in vars(ssl.SSLContext))
later = ssl.create_default_context()
print("ca_later", later.cert_store_stats()["x509_ca"])
"""


def _bundle(directory: Path, name: str = "system-ca") -> Path:
    """A self-signed certificate named `name`: a CA bundle."""
    return self_signed(directory, name)[1]


def _child(tmp_path: Path, script: str, *args: str) -> dict[str, str]:
    return run_trusting(_bundle(tmp_path / "system"), script, *args)


def test_a_context_made_and_used_while_aiohttp_imports_verifies_with_the_bundle(
    tmp_path: Path,
) -> None:
    """Before, a context whose load was put off stayed a plain SSLContext until the import
    returned: a handshake by another thread in that window checked the server against an
    empty store (refused, however trusted the server)."""
    seen = _child(tmp_path, DURING_THE_IMPORT)
    assert seen["ca_at_handshake"] == "1"
    assert (seen["subclass_kept"], seen["subclass_ca"]) == ("True", "1")  # loaded at once
    assert seen["patched_after"] == "False"  # the class is as it was
    assert seen["ca_later"] == "1"  # contexts made afterwards load as ever


AN_OVERRIDE_ON_THE_CLASS = """\
import ssl, sys
from agent.ship.tls import import_aiohttp

def pinned(self):
    '''Someone's own default paths (a pinned corporate CA), installed after the agent's
    tls module was imported and before aiohttp.'''
    self.load_verify_locations(cafile=sys.argv[1])

ssl.SSLContext.set_default_verify_paths = pinned
import_aiohttp()
from aiohttp.connector import _SSL_CONTEXT_VERIFIED as verified

print("kept", ssl.SSLContext.set_default_verify_paths is pinned)
verified.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.org")
print("trusted", ",".join(c["subject"][0][0][1] for c in verified.get_ca_certs()))
"""


def test_an_override_installed_on_the_class_is_what_the_deferred_load_calls(
    tmp_path: Path,
) -> None:
    """aiohttp's contexts would have called the override at import; put off, they must
    call it still, not the system bundle (SSL_CERT_FILE) it stood in for: trusting that
    instead would verify against more (or other) CAs than before."""
    pinned = _bundle(tmp_path / "pinned", "pinned-ca")
    seen = _child(tmp_path, AN_OVERRIDE_ON_THE_CLASS, str(pinned))
    assert seen["kept"] == "True"
    assert seen["trusted"] == "pinned-ca"
