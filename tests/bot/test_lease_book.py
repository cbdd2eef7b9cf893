"""`LeaseBook` and `HeldLease`: a process's leases on the requests it carries out. The loop's
`renew_due` renews, in one statement, only the leases past a third of their life (a request that
ends sooner costs no heartbeat write); `check()` before an outside action renews a lease near its
end, raises `LeaseLost` once another replica took the request over or the lease ran out
unrenewed, and lets a failing renewal pass while the lease lasts. Both backends, fake time."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import pytest

from bot.audit import AuditError, AuditStore, Lease, LeaseLost
from bot.requests.leases import CHECK_MARGIN, RENEW_BELOW, LeaseBook
from tests.bot.requestkit import LEASE_S, Replicas, new_request


class Renewals(AuditStore):
    """A real store that counts its renewal statements (each `renew_leases` call is one) and,
    with `failing`, fails them as a database outage does."""

    failing = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.renewed: list[list[str]] = []

    async def renew_leases(self, leases: Iterable[Lease]) -> tuple[list[Lease], list[Lease]]:
        held = list(leases)
        if self.failing:
            raise AuditError("the audit store could not renew leases: connection refused")
        self.renewed.append(sorted(lease.request_key for lease in held))
        return await super().renew_leases(held)


async def me(cluster: Replicas) -> tuple[Renewals, LeaseBook]:
    store = await cluster.open_as(Renewals, "me")
    return store, LeaseBook(store, monotonic=cluster.clock)


async def claim(store: AuditStore, key: str) -> Lease:
    lease = await store.claim_request(new_request(key))
    assert lease is not None
    return lease


def keys(leases: Sequence[Lease]) -> list[str]:
    return [lease.request_key for lease in leases]


async def test_the_book_holds_a_lease_until_released(cluster: Replicas) -> None:
    store, book = await me(cluster)
    lease = await claim(store, "req-1")
    held = book.hold(lease)
    assert (held.request_key, held.lease, held.lost) == ("req-1", lease, False)
    assert book.held == {"req-1"}
    assert book.lease_s == LEASE_S
    assert held.remaining() == LEASE_S
    again = book.hold(lease)  # held anew (a takeover of a request it once held)
    book.release(held)  # the older hold's release leaves the new one alone
    assert book.held == {"req-1"}
    book.release(again)
    assert book.held == frozenset()


async def test_renew_due_renews_only_leases_past_a_third_in_one_statement(
    cluster: Replicas,
) -> None:
    store, book = await me(cluster)
    third = LEASE_S * (1 - RENEW_BELOW)
    first = book.hold(await claim(store, "first"))
    await cluster.advance(third / 2)
    second = book.hold(await claim(store, "second"))
    await cluster.advance(third / 2 - 1)  # first: just under a third of its life
    await book.renew_due()
    assert store.renewed == []

    await cluster.advance(2)  # first is past a third; second is not
    await book.renew_due()
    assert store.renewed == [["first"]]
    assert first.remaining() == LEASE_S
    assert second.remaining() == LEASE_S - third / 2 - 1

    await cluster.advance(third + 1)  # both are past a third now: renewed together
    await book.renew_due()
    assert store.renewed == [["first"], ["first", "second"]]
    assert first.remaining() == second.remaining() == LEASE_S
    # Renewed, they outlive their first lease many times over.
    other = await cluster.open("other")
    for _ in range(5):
        await cluster.advance(LEASE_S / 2)
        await book.renew_due()
        assert await other.take_over() == []


async def test_a_request_that_ends_within_a_third_costs_no_heartbeat(cluster: Replicas) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "quick"))
    await cluster.advance(LEASE_S / 3 - 1)
    await held.check()
    await store.finish_request(held.lease)
    book.release(held)
    await cluster.advance(LEASE_S)
    await book.renew_due()
    assert store.renewed == []


async def test_renew_due_marks_a_lease_taken_over_lost_and_says_so(
    cluster: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    store, book = await me(cluster)
    kept = book.hold(await claim(store, "kept"))
    taken = book.hold(await claim(store, "taken"))
    await cluster.advance(LEASE_S + 1)  # this replica was paused past its leases
    survivor = await cluster.open("survivor")
    await store.renew_leases([kept.lease])  # only one lease was renewed in time... by luck
    [took] = await survivor.take_over()
    assert took.request_key == "taken"
    with caplog.at_level(logging.WARNING, logger="bot.requests.leases"):
        await book.renew_due()
    assert (taken.lost, kept.lost) == (True, False)
    assert "request taken was taken over by another replica" in caplog.text
    with pytest.raises(LeaseLost, match="taken over"):
        await taken.check()
    await kept.check()


async def test_renew_due_never_raises(cluster: Replicas, caplog: pytest.LogCaptureFixture) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "req-1"))
    await cluster.advance(LEASE_S / 2)
    store.failing = True
    with caplog.at_level(logging.WARNING, logger="bot.requests.leases"):
        await book.renew_due()
    assert "could not renew 1 lease(s), trying again" in caplog.text
    assert not held.lost
    store.failing = False
    await book.renew_due()  # the next beat renews it
    assert held.remaining() == LEASE_S


async def test_check_renews_only_near_the_end(cluster: Replicas) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "req-1"))
    await cluster.advance(LEASE_S * (1 - CHECK_MARGIN) - 1)  # more than a third left
    await held.check()
    assert store.renewed == []
    await cluster.advance(2)  # less than a third left: renewed before going ahead
    await held.check()
    assert store.renewed == [["req-1"]]
    assert held.remaining() == LEASE_S
    assert held.lease.fence == 1


async def test_check_raises_once_another_replica_took_the_request_over(
    cluster: Replicas,
) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "req-1"))
    await cluster.advance(LEASE_S + 5)  # paused (SIGSTOP) past its lease
    survivor = await cluster.open("survivor")
    [taken] = await survivor.take_over()
    with pytest.raises(LeaseLost, match="taken over by another replica"):
        await held.check()
    assert held.lost
    record = await store.get_request("req-1")
    assert record is not None
    assert (record.owner, record.fence) == ("survivor", taken.lease.fence)


async def test_a_lease_that_ran_out_unrenewed_is_lost_even_if_nobody_took_it(
    cluster: Replicas,
) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "req-1"))
    store.failing = True  # the database cannot be reached
    await cluster.advance(LEASE_S)
    with pytest.raises(LeaseLost, match="ran out and could not be renewed"):
        await held.check()
    # It cannot know whether a survivor took it: it must act as if one did.
    assert not held.lost


async def test_a_failing_renewal_is_not_a_loss_while_the_lease_lasts(
    cluster: Replicas, caplog: pytest.LogCaptureFixture
) -> None:
    store, book = await me(cluster)
    held = book.hold(await claim(store, "req-1"))
    store.failing = True
    await cluster.advance(LEASE_S - 1)  # a second left, and no way to renew
    with caplog.at_level(logging.WARNING, logger="bot.requests.leases"):
        await held.check()
    assert "could not renew the lease on request req-1" in caplog.text
    assert not held.lost
    assert held.remaining() == 1
    # The database is back: the next check renews it.
    store.failing = False
    await held.check()
    assert held.remaining() == LEASE_S
