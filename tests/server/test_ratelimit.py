"""The per-connection rate limiter's arithmetic, on a clock the test steps by hand (the real
connection uses the event loop's clock; see tests/reliability/test_hostile_clients.py)."""

from __future__ import annotations

import pytest

from server.ratelimit import Limits, RateLimit, TokenBucket, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_up_to_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(10, 5, clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60
    assert bucket.tokens == 5  # never more than the burst


def test_charge_goes_into_debt_that_time_pays_back() -> None:
    clock = Clock()
    bucket = TokenBucket(100, 100, clock)
    bucket.charge(250)
    assert bucket.tokens == -150
    assert not bucket.take(1)
    clock.now += 1.6
    assert bucket.take(1)


def test_bucket_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1, Clock())


def _limit(clock: Clock, **kw: float) -> RateLimit:
    values = {
        "messages_per_s": 10.0,
        "burst": 20,
        "bytes_per_s": 1000.0,
        "burst_bytes": 4000,
        "close_after": 50,
    }
    values.update(kw)
    return RateLimit(Limits(**values), clock)  # type: ignore[arg-type]


def test_burst_then_drops_with_one_notice_a_second() -> None:
    clock = Clock()
    limit = _limit(clock)
    verdicts = [limit.message(10) for _ in range(25)]
    assert verdicts[:20] == [Verdict.ALLOW] * 20
    assert verdicts[20:] == [Verdict.DROP_NOTIFY] + [Verdict.DROP] * 4
    assert limit.dropped == 5 and limit.notice_sent() == 5 and limit.dropped_since_notice == 0
    clock.now += 0.5  # 5 more messages allowed, and no new notice within the second
    assert [limit.message(10) for _ in range(6)] == [Verdict.ALLOW] * 5 + [Verdict.DROP]
    clock.now += 0.5  # a second after the notice
    verdicts = [limit.message(10) for _ in range(6)]
    assert verdicts == [Verdict.ALLOW] * 5 + [Verdict.DROP_NOTIFY]
    assert limit.notice_sent() == 2


def test_a_client_that_keeps_going_is_closed() -> None:
    clock = Clock()
    limit = _limit(clock, close_after=30)
    verdicts = [limit.message(1) for _ in range(20 + 30)]
    assert verdicts[-1] is Verdict.CLOSE
    assert Verdict.CLOSE not in verdicts[:-1]


def test_bytes_are_limited_and_continuations_are_charged() -> None:
    clock = Clock()
    limit = _limit(clock, messages_per_s=0)  # bytes only
    assert limit.message(3000) is Verdict.ALLOW
    limit.continuation(900)  # the rest of that message: never refused
    assert limit.message(200) is Verdict.DROP_NOTIFY  # 100 bytes left
    clock.now += 0.2  # +200 bytes
    assert limit.message(200) is Verdict.ALLOW


def test_zero_turns_the_limit_off() -> None:
    clock = Clock()
    limit = _limit(clock, messages_per_s=0, bytes_per_s=0)
    assert not limit.enabled
    assert all(limit.message(10**6) is Verdict.ALLOW for _ in range(10_000))
