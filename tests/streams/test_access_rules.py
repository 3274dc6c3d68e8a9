"""The API's access rules as pure logic: tokens compared whole, token buckets per client."""

from streams.engine.web import MAX_CLIENTS, Access, RateLimiter
from streams.settings import Settings


def test_a_bucket_allows_its_burst_then_its_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.wait("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait("a") == 0.5  # one token comes back in half a second
    assert limiter.wait("b") == 0.0  # another client has its own bucket
    now[0] = 0.5
    assert limiter.wait("a") == 0.0 and limiter.wait("a") > 0


def test_the_buckets_kept_are_bounded():
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: 0.0)
    for n in range(MAX_CLIENTS + 50):
        limiter.wait(f"client-{n}")
    assert len(limiter._buckets) == MAX_CLIENTS


def test_only_a_whole_configured_token_is_valid():
    access = Access(Settings().with_(api_tokens="first-token, second-token"))
    assert access.token_of("Bearer first-token") == "first-token"
    assert access.token_of("Bearer second-token") == "second-token"
    for header in (None, "", "first-token", "Bearer first", "Bearer first-token-x", "Basic Zmlyc3Q=", "Bearer "):
        assert access.token_of(header) is None, header
