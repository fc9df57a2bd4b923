"""aiohttp imported by `agent.ship.tls.import_aiohttp` (what `run` does) loads no CA bundle at
import, and still verifies https endpoints: the bundle is read at the first handshake. Each
scenario runs in a child Python (this process imported aiohttp long ago), whose CA bundle
is the file SSL_CERT_FILE names."""

from __future__ import annotations

from pathlib import Path

from tests.support.certs import run_trusting, self_signed

CLIENT = """\
import asyncio, ssl, sys
from agent.ship.tls import import_aiohttp

import_aiohttp()
import aiohttp
from aiohttp import web
from aiohttp.connector import _SSL_CONTEXT_VERIFIED as verified

print("ca_at_import", verified.cert_store_stats()["x509_ca"])

async def main(key, cert):
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="hello"))
    runner = web.AppRunner(app)
    await runner.setup()
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as session:  # ssl=True: aiohttp's own context
            async with session.get(f"https://127.0.0.1:{port}/") as answer:
                print("answer", answer.status, await answer.text())
    except aiohttp.ClientConnectorCertificateError:
        print("answer refused_certificate")
    finally:
        await runner.cleanup()
    print("ca_after", verified.cert_store_stats()["x509_ca"])

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 in `directory`; (key, cert)."""
    return self_signed(directory)


def _client(tmp_path: Path, served: tuple[Path, Path], trusted: Path) -> dict[str, str]:
    """Run CLIENT against a server presenting `served`, trusting only `trusted`."""
    return run_trusting(trusted, CLIENT, str(served[0]), str(served[1]))


def test_a_trusted_endpoint_answers_and_the_bundle_is_read_at_the_first_handshake(
    tmp_path: Path,
) -> None:
    served = _certificate(tmp_path / "server")
    seen = _client(tmp_path, served, trusted=served[1])
    assert seen["ca_at_import"] == "0"  # nothing read while importing
    assert seen["answer"] == "200 hello"
    assert seen["ca_after"] == "1"  # the bundle (this one certificate), read when needed


def test_an_untrusted_endpoint_is_still_refused(tmp_path: Path) -> None:
    served = _certificate(tmp_path / "server")
    _other_key, other = _certificate(tmp_path / "other")
    seen = _client(tmp_path, served, trusted=other)
    assert seen["ca_at_import"] == "0"
    assert seen["answer"] == "refused_certificate"
    assert seen["ca_after"] == "1"
