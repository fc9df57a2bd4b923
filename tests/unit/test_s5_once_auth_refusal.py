"""When `run --once` gives up on a refused key (`agent.once.AuthRefusal`), look by look.

The rule: refused continuously (no success, the flag never cleared) for AUTH_PATIENCE and at
least twice, the last refusal that long after the first. A key still being propagated, a
single refusal followed by silence, or a success in between never ends the run.
"""

from __future__ import annotations

from agent.once import AUTH_PATIENCE, AuthRefusal, EndpointRefusal
from agent.ops.snapshot import AgentSnapshot, LatencyHistogram
from tests.ops.snapshots import healthy


def refused(times: int, *, status: str = "401", token: int = 0, sent: int = 0) -> AgentSnapshot:
    """The agent after `times` answers of `status` (and `token` tries the OAuth token endpoint
    refused, which post nothing), `sent` events delivered before."""
    tries = LatencyHistogram()
    for _ in range(times + token):
        tries.observe(0.01)
    return healthy(
        requests={status: times} if times else {},
        request_latency=tries.frozen(),
        auth_failing=times + token > 0,
        events_sent=sent,
    )


def test_a_key_refused_twice_over_the_patience_gives_up_with_its_status() -> None:
    watch = AuthRefusal()
    assert not watch.observe(refused(1), now=0.0)
    assert not watch.observe(refused(1), now=AUTH_PATIENCE + 5)  # no new try: no proof yet
    assert watch.observe(refused(2, status="401"), now=AUTH_PATIENCE + 6)
    assert (watch.status, watch.refusals) == (401, 2)


def test_many_refusals_within_the_patience_do_not_give_up() -> None:
    watch = AuthRefusal()
    for second in range(int(AUTH_PATIENCE)):
        assert not watch.observe(refused(second + 1), now=float(second))


def test_a_key_accepted_in_between_starts_the_count_again() -> None:
    watch = AuthRefusal()
    assert not watch.observe(refused(1), now=0.0)
    assert not watch.observe(refused(2, sent=10), now=10.0)  # delivered: a new episode
    assert not watch.observe(refused(3, sent=10), now=AUTH_PATIENCE + 1)
    assert watch.observe(refused(4, sent=10), now=10.0 + AUTH_PATIENCE)


def test_the_flag_cleared_starts_the_count_again() -> None:
    watch = AuthRefusal()
    assert not watch.observe(refused(1), now=0.0)
    assert not watch.observe(healthy(auth_failing=False), now=5.0)
    assert not watch.observe(refused(2), now=AUTH_PATIENCE + 1)
    assert watch.observe(refused(3), now=2 * AUTH_PATIENCE + 1)


def test_an_oauth_client_refused_at_the_token_endpoint_counts_too() -> None:
    watch = AuthRefusal()
    assert not watch.observe(refused(0, token=1), now=0.0)
    assert watch.observe(refused(0, token=3), now=AUTH_PATIENCE)
    assert watch.status is None and watch.refusals == 3


def test_a_403_is_named_as_such() -> None:
    watch = AuthRefusal()
    watch.observe(refused(1, status="403"), now=0.0)
    assert watch.observe(refused(2, status="403"), now=AUTH_PATIENCE)
    assert watch.status == 403


def endpoint_refusing(tries: int, reason: str = "not_found") -> AgentSnapshot:
    histogram = LatencyHistogram()
    for _ in range(tries):
        histogram.observe(0.01)
    return healthy(
        requests={"404": tries}, request_latency=histogram.frozen(), endpoint_refusing=reason
    )


def test_an_endpoint_refusing_everything_gives_up_under_the_same_rule() -> None:
    watch = EndpointRefusal()
    assert not watch.observe(endpoint_refusing(3), now=0.0)
    assert not watch.observe(endpoint_refusing(3), now=AUTH_PATIENCE + 1)  # no new try
    assert watch.observe(endpoint_refusing(4), now=AUTH_PATIENCE + 2)


def test_an_endpoint_refusal_is_not_a_key_refusal() -> None:
    key, endpoint = AuthRefusal(), EndpointRefusal()
    for second, tries in ((0.0, 1), (AUTH_PATIENCE + 1, 2)):
        assert not key.observe(endpoint_refusing(tries), now=second)
        assert not endpoint.observe(refused(tries), now=second)
