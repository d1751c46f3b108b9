"""The run's lock: taken over from a dead run once expired, renewed through transient errors, and
known to be lost (so the run stops as INCOMPLETE) when it cannot be renewed or another run holds it.
The Lease lifecycle against a real apiserver is proved in tests/e2e."""

import copy
import datetime as dt
import threading
from types import SimpleNamespace as NS

import pytest
from kubernetes.client.rest import ApiException

from seatrials import lock
from seatrials.cluster import SetupError


class Coordination:
    """A Lease store like the apiserver's: 409 on create when it exists, resource versions on replace."""

    def __init__(self, lease=None):
        self.lease, self.fail_next, self.requests = lease, [], 0
        self.mutex = threading.Lock()

    def _maybe_fail(self):
        if self.fail_next:
            raise self.fail_next.pop(0)

    def create_namespaced_lease(self, namespace, body):
        with self.mutex:
            self._maybe_fail()
            self.requests += 1
            if self.lease is not None:
                raise ApiException(status=409, reason="Conflict")
            return self._store(body)

    def read_namespaced_lease(self, name, namespace, **kwargs):
        with self.mutex:
            self._maybe_fail()
            self.requests += 1
            if self.lease is None:
                raise ApiException(status=404, reason="Not Found")
            return copy.deepcopy(self.lease)

    def replace_namespaced_lease(self, name, namespace, body, **kwargs):
        with self.mutex:
            self._maybe_fail()
            self.requests += 1
            if self.lease is None or body.metadata.resource_version != self.lease.metadata.resource_version:
                raise ApiException(status=409, reason="Conflict")
            return self._store(body)

    def _store(self, body):
        """As the apiserver keeps it: a new resource version on every write; the caller gets a copy."""
        self.lease = copy.deepcopy(body)
        self.lease.metadata.resource_version = str(int(self.lease.metadata.resource_version or 0) + 1)
        return copy.deepcopy(self.lease)

    def delete_namespaced_lease(self, name, namespace, body=None):
        with self.mutex:
            self.requests += 1
            if self.lease is None:
                raise ApiException(status=404, reason="Not Found")
            version = body.preconditions.resource_version if body and body.preconditions else None
            if version and version != self.lease.metadata.resource_version:
                raise ApiException(status=409, reason="Conflict")
            self.lease = None


def held_by(run_id, renewed_ago: float):
    renewed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=renewed_ago)
    return NS(metadata=NS(resource_version="1"), spec=NS(holder_identity=run_id, renew_time=renewed,
                                                         acquire_time=renewed, lease_duration_seconds=30))


def test_an_expired_lease_of_a_dead_run_is_taken_over_at_once(monkeypatch):
    coord = Coordination(held_by("dead-run", renewed_ago=45))
    monkeypatch.setattr(lock, "RENEW_EVERY", 3600)
    mine = lock.ClusterLock(NS(coordination=coord), "new-run")
    mine.acquire(wait=0)
    assert mine.taken_over == "dead-run" and coord.lease.spec.holder_identity == "new-run"
    mine.release()
    assert coord.lease is None


def test_a_live_lease_is_refused_in_one_line():
    coord = Coordination(held_by("live-run", renewed_ago=2))
    with pytest.raises(SetupError, match=r"another seatrials run \(live-run, since .*\) holds this cluster's lock"):
        lock.ClusterLock(NS(coordination=coord), "new-run").acquire(wait=0)


def test_renewal_survives_transient_errors_of_any_kind():
    coord = Coordination()
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine.acquire(wait=0)
    mine._stop.set()  # renew by hand below, not in the thread
    coord.fail_next = [ConnectionResetError("reset by peer"), ApiException(status=500, reason="etcd timeout")]
    for _ in range(3):
        try:
            mine.renew()
        except Exception:  # noqa: BLE001, S112 - what the renewer thread swallows
            continue
    assert mine.lost is None and coord.lease.spec.holder_identity == "run"


def test_a_lock_that_cannot_be_renewed_for_its_duration_is_lost(monkeypatch):
    coord = Coordination()
    monkeypatch.setattr(lock, "RENEW_EVERY", 0.01)
    monkeypatch.setattr(lock, "LEASE_SECONDS", 0.05)
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine.acquire(wait=0)
    coord.fail_next = [TimeoutError("read timed out")] * 1000
    mine._renewer.join(timeout=5)
    assert mine.lost and "could not be renewed" in mine.lost and "timed out" in mine.lost


def test_a_lock_another_run_took_is_lost():
    coord = Coordination()
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine.acquire(wait=0)
    mine._stop.set()
    coord.lease = held_by("other-run", renewed_ago=0)
    coord.lease.metadata.resource_version = "7"  # its own write
    mine.renew()
    assert mine.lost == "run other-run holds the lock now"


def test_release_is_one_request_and_leaves_another_runs_lease_alone():
    coord = Coordination()
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine.acquire(wait=0)
    before = coord.requests
    mine.release()
    assert coord.lease is None and coord.requests - before == 1
    theirs = held_by("other-run", renewed_ago=0)
    theirs.metadata.resource_version = "9"
    coord.lease = theirs  # taken over after this run lost it
    mine.release()
    assert coord.lease is theirs


def test_a_renewal_is_one_request():
    coord = Coordination()
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine.acquire(wait=0)
    mine._stop.set()
    before = coord.requests
    for _ in range(5):
        mine.renew()
    assert coord.requests - before == 5 and mine.lost is None and coord.lease.metadata.resource_version == "6"


class Ticks:
    """The renewer's stop event: records how long each wait was, and stops after `count` of them."""

    def __init__(self, count: int):
        self.count, self.waits = count, []

    def wait(self, seconds):
        self.waits.append(seconds)
        return len(self.waits) > self.count

    def set(self):
        self.count = 0


def test_renewals_are_half_a_lease_apart_and_a_failed_one_is_retried_within_seconds():
    """One request every 15 s of a run (every 10 s before: 34 in a 344 s run at 500 nodes, 23 now), the lease
    unchanged: a dead run's lease still expires 30 s after its last renewal."""
    coord = Coordination()
    mine = lock.ClusterLock(NS(coordination=coord), "run")
    mine._stop = Ticks(6)
    mine.acquire(wait=0)
    mine._renewer.join(timeout=5)
    assert lock.LEASE_SECONDS == 30
    assert mine._stop.waits == [lock.RENEW_EVERY] * 7 and coord.requests == 1 + 6
    coord.fail_next = [TimeoutError("read timed out"), ConnectionResetError("reset by peer")]
    mine._stop = Ticks(4)
    mine._renew_until_stopped()
    assert mine._stop.waits == [lock.RENEW_EVERY, lock.RETRY_EVERY, lock.RETRY_EVERY, lock.RENEW_EVERY,
                                lock.RENEW_EVERY]
    assert mine.lost is None and lock.RENEW_EVERY + 2 * lock.RETRY_EVERY + lock.RENEW_TIMEOUT[1] < lock.LEASE_SECONDS
