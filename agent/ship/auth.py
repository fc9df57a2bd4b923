"""The Authorization header for Polaris, built in one place for both HTTP clients (the
events client in `ship/http.py` and the management client in `polaris/api.py`)."""

from __future__ import annotations

import base64

from pydantic import SecretStr


def basic_auth(api_key: str | SecretStr) -> str:
    """Polaris' API key auth: HTTP Basic, the key as user name, an empty password.

    Built by hand (aiohttp deprecates `BasicAuth`, and its session auth is what redirects
    re-apply) and sent as a plain default header, only to `polaris.url`: neither client
    follows redirects, so the header cannot leak to another host."""
    key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    return "Basic " + base64.b64encode(f"{key}:".encode()).decode("ascii")
