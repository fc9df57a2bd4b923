"""Requests -> Polaris: HTTP, pacing, retries."""
