"""One run per cluster at a time: a Lease that the live run renews.

The holder renews it every RENEW_EVERY seconds (and a few seconds after a renewal
that failed); a holder that died (even SIGKILLed) leaves a lease that expires
LEASE_SECONDS after its last renewal, and the next run takes it over and clears
what the dead run left (probes.remove_leftovers).
A run that cannot renew its lease for as long as the lease lasts has lost it
(another run may hold it by now): `lost` says why, and the run stops as
INCOMPLETE rather than go on without it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from kubernetes import client
from kubernetes.client.rest import ApiException

from seatrials.cluster import SetupError, one_line

LOCK_NAMESPACE, LOCK_NAME = "default", "seatrials-lock"
LEASE_SECONDS = 30
# A run pays one request (renew) every RENEW_EVERY seconds, half the lease. After a renewal that failed it tries
# again every RETRY_EVERY seconds, each try bounded by RENEW_TIMEOUT: three tries or more before the lease expires,
# as renewing every 10 s gave, where a renewal that hung waited out the usual 30 s read timeout, and the lease.
RENEW_EVERY = 15.0
RETRY_EVERY = 2.0
RENEW_TIMEOUT = (3, 5)  # connect, read seconds
MANAGED_BY = {"app.kubernetes.io/managed-by": "seatrials"}
RUN_LABEL = "seatrials.io/run-id"


def lease_age(lease, now: dt.datetime | None = None) -> float | None:
    """Seconds since the lease was last renewed (or taken); None when it never was."""
    renewed = lease.spec.renew_time or lease.spec.acquire_time
    return None if renewed is None else ((now or dt.datetime.now(dt.UTC)) - renewed).total_seconds()


def lease_expired(lease, now: dt.datetime | None = None) -> bool:
    age = lease_age(lease, now)
    return age is None or age > (lease.spec.lease_duration_seconds or LEASE_SECONDS)


class ClusterLock:
    """The Lease default/seatrials-lock, held by one run id."""

    def __init__(self, cluster, run_id: str):
        self.cluster, self.run_id = cluster, run_id
        self.taken_over: str | None = None  # the expired holder this run replaced, if any
        self.lost: str | None = None  # why the lock was lost, once it is
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._renewed = time.monotonic()
        self._lease = None  # the lease as this run last wrote it (its resource version)

    def _body(self, resource_version=None):
        now = dt.datetime.now(dt.UTC)
        return client.V1Lease(
            metadata=client.V1ObjectMeta(name=LOCK_NAME, namespace=LOCK_NAMESPACE,
                                         labels={**MANAGED_BY, RUN_LABEL: self.run_id},
                                         resource_version=resource_version),
            spec=client.V1LeaseSpec(holder_identity=self.run_id, lease_duration_seconds=LEASE_SECONDS,
                                    acquire_time=now, renew_time=now))

    def acquire(self, wait: float) -> None:
        """Take the lease, waiting up to `wait` seconds for a live holder; an expired one is taken over."""
        deadline = time.monotonic() + wait
        coord = self.cluster.coordination
        while True:
            try:
                self._lease = coord.create_namespaced_lease(LOCK_NAMESPACE, self._body())
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise SetupError(f"cannot take the seatrials lock (Lease {LOCK_NAMESPACE}/{LOCK_NAME}): "
                                     f"{exc.status} {exc.reason}") from None
            held = coord.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
            if lease_expired(held):
                try:
                    self._lease = coord.replace_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE,
                                                                 self._body(held.metadata.resource_version))
                    self.taken_over = held.spec.holder_identity
                    break
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    continue  # someone else took it over first; look again
            if time.monotonic() >= deadline:
                since = held.spec.acquire_time.isoformat() if held.spec.acquire_time else "unknown"
                raise SetupError(
                    f"another seatrials run ({held.spec.holder_identity}, since {since}) holds this cluster's lock "
                    f"(Lease {LOCK_NAMESPACE}/{LOCK_NAME}): wait for it (--lock-wait SECONDS); if it died, its lock "
                    f"expires {LEASE_SECONDS} s after its last renewal")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        self._renewed = time.monotonic()
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="seatrials-lock-renewer",
                                         daemon=True)
        self._renewer.start()

    def _renew_until_stopped(self) -> None:
        wait = RENEW_EVERY
        while not self._stop.wait(wait):
            renewed = self._renewed
            try:
                self.renew()
            except Exception as exc:  # noqa: BLE001 - any transient error: try again soon
                if time.monotonic() - self._renewed > LEASE_SECONDS:
                    self.lost = (f"the lock could not be renewed for {LEASE_SECONDS} s (last error: "
                                 f"{one_line(exc)}), so another run may hold it now")
            if self.lost:
                return
            wait = RENEW_EVERY if self._renewed != renewed else RETRY_EVERY

    def renew(self) -> None:
        """One renewal, one request: the lease as this run last wrote it, its resource version a precondition. A
        conflict means someone wrote it since: read, `lost` when another run holds it now, else renewed next time."""
        coord = self.cluster.coordination
        lease = self._lease
        lease.spec.renew_time = dt.datetime.now(dt.UTC)
        try:
            self._lease = coord.replace_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE, lease,
                                                         _request_timeout=RENEW_TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self._lease = coord.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE, _request_timeout=RENEW_TIMEOUT)
            if self._lease.spec.holder_identity != self.run_id:
                self.lost = f"run {self._lease.spec.holder_identity} holds the lock now"
            return
        self._renewed = time.monotonic()

    def release(self) -> None:
        """Delete the lease as this run last wrote it (one request); written since (409: a renewal under way,
        or another run's), it is deleted only when this run still holds it."""
        self._stop.set()
        coord = self.cluster.coordination
        try:
            try:
                version = self._lease.metadata.resource_version if self._lease else None
                coord.delete_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE, body=client.V1DeleteOptions(
                    preconditions=client.V1Preconditions(resource_version=version)))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                if coord.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE).spec.holder_identity == self.run_id:
                    coord.delete_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise


def expired_lease(cluster) -> tuple[bool, str | None]:
    """(whether an expired lease was removed, the live holder if any): for --cleanup-only."""
    try:
        lease = cluster.coordination.read_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return False, None
    if not lease_expired(lease):
        return False, lease.spec.holder_identity
    cluster.coordination.delete_namespaced_lease(LOCK_NAME, LOCK_NAMESPACE)
    return True, None
