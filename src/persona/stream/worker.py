"""`persona worker`: the change stream's consumers, and its relay.

Each consumer is a consumer group of the stream with a thread of its own in this process:
``lake`` keeps the event lake current as events arrive, and each active webhook has its
``webhook:<id>`` group (started and stopped as webhooks are created and deleted). Several
workers share each group's messages. A message is acknowledged once handled; a worker that
dies first leaves it pending, and it is claimed again after ``claim_idle_seconds``. Handling
twice changes nothing: the lake copies from the store by write number, and a webhook's
delivered messages are noted and dropped when they come again.

The relay (``stream.relay``) runs in one process of all the servers and workers of a store at a
time, under the ``stream-relay`` lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import httpx

from persona.clock import Clock
from persona.jobs import Leadership, PeriodicJob, start_all, stop_all
from persona.leases import Leases
from persona.storage.protocols import EventLake, Storage
from persona.stream.export import Export
from persona.stream.redis_stream import Received, RedisStream
from persona.stream.relay import Relay
from persona.stream.settings import StreamSettings
from persona.stream.webhooks import GROUP_PREFIX, Deliveries, WebhookService, webhook_group

log = logging.getLogger(__name__)

LAKE_GROUP = "lake"
EXPORT_GROUP = "export"
WEBHOOKS_SECONDS = 1.0  # how often the worker looks for webhooks created or deleted
BLOCK_MS = 500  # how long one read waits for messages (and a stop is noticed within)
PRUNE_SECONDS = 3600.0


def relay_jobs(
    storage: Storage,
    stream: RedisStream,
    leases: Leases,
    settings: StreamSettings,
    counted: Callable[[int], None] = lambda messages: None,
) -> tuple[Leadership, list[PeriodicJob]]:
    """The relay, run while this process holds the ``stream-relay`` lease, and the lease's
    renewal: for `persona serve` and `persona worker` alike."""
    leadership = Leadership(leases, name="stream-relay", ttl_seconds=5.0)
    relay = Relay(storage, stream, counted)
    job = PeriodicJob(
        "stream-relay", settings.relay_interval_seconds, relay.run_once, when=leadership.held
    )
    return leadership, [leadership.job(), job]


class Consumer:
    """One consumer group read by a thread: ``handle`` each batch, then acknowledge it."""

    def __init__(
        self,
        stream: RedisStream,
        group: str,
        handle: Callable[[Sequence[Received]], object],
        *,
        name: str,
        count: int,
        claim_idle_ms: int,
        when: Callable[[], bool] = lambda: True,
    ) -> None:
        self.group = group
        self._when = when  # reads only while true (the exporter: while it holds its lease)
        self._stream = stream
        self._handle = handle
        self._name = name
        self._count = count
        self._claim_idle_ms = claim_idle_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consume-{group}", daemon=True)

    def start(self) -> None:
        self._stream.join(self.group)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._when():
                self._stop.wait(BLOCK_MS / 1000)
                continue
            try:
                received = self._stream.receive(
                    self.group, self._name, self._count, BLOCK_MS, self._claim_idle_ms
                )
                if received:
                    self._handle(received)
                    self._stream.ack(self.group, received)
            except Exception:
                # Unacknowledged: claimed again after the idle time, by this worker or another.
                log.exception("consumer %s failed; it goes on in a second", self.group)
                self._stop.wait(1.0)


class Worker:
    def __init__(
        self,
        storage: Storage,
        stream: RedisStream,
        lake: EventLake,
        leases: Leases,
        clock: Clock,
        settings: StreamSettings,
        *,
        export: Path | None = None,
        counted: Callable[[str, int], None] = lambda outcome, n: None,
        published: Callable[[int], None] = lambda messages: None,
    ) -> None:
        self._storage = storage
        self._published = published
        self._stream = stream
        self._lake = lake
        self._leases = leases
        self._settings = settings
        self._webhooks = WebhookService(storage, clock)
        self._client = httpx.Client()
        self._deliveries = Deliveries(storage, clock, settings, self._client, counted=counted)
        self._clock = clock
        self._export = None if export is None else Export(export, settings.deliveries_kept_days)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._consumers: dict[str, Consumer] = {}
        self._stopped = threading.Event()

    def _consumer(self, group: str, handle: Callable[[Sequence[Received]], object]) -> Consumer:
        return Consumer(
            self._stream,
            group,
            handle,
            name=self.name,
            # A webhook's read is posted in requests of ``webhook_batch``, noted in one write.
            count=self._settings.webhook_batch * 10 if group.startswith(GROUP_PREFIX) else 10_000,
            claim_idle_ms=int(self._settings.claim_idle_seconds * 1000),
        )

    def run(self) -> None:
        """Consume until ``stop``."""
        leadership, jobs = relay_jobs(
            self._storage, self._stream, self._leases, self._settings, self._published
        )
        leadership.renew()
        started = start_all(
            [*jobs, PeriodicJob("prune-deliveries", PRUNE_SECONDS, self.prune, at_start=True)]
        )
        lake = self._consumer(LAKE_GROUP, self._sync_lake)
        lake.start()
        self._consumers[LAKE_GROUP] = lake
        exporting = self._start_export()
        if exporting is not None:
            started.append(exporting.job())
            started[-1].start()
        try:
            while not self._stopped.is_set():
                self._follow_webhooks()
                self._stopped.wait(WEBHOOKS_SECONDS)
        finally:
            stop_all(started)
            leadership.release()
            if exporting is not None:
                exporting.release()
            for consumer in self._consumers.values():
                consumer.stop()
            for consumer in self._consumers.values():
                consumer.join(BLOCK_MS / 1000 * 4)
            self._client.close()
            if self._export is not None:
                self._export.close()

    def stop(self) -> None:
        self._stopped.set()

    def _start_export(self) -> Leadership | None:
        """The ``export`` group, read by the holder of the ``stream-export`` lease only, which
        takes every pending message first (whoever left it): the files then receive the
        stream in its order, which is what lets them drop what they hold already."""
        if self._export is None:
            return None
        leadership = Leadership(self._leases, name="stream-export", ttl_seconds=5.0)
        leadership.renew()
        export = self._export
        consumer = Consumer(
            self._stream,
            EXPORT_GROUP,
            export.write,
            name=self.name,
            count=10_000,
            claim_idle_ms=0,
            when=leadership.held,
        )
        consumer.start()
        self._consumers[EXPORT_GROUP] = consumer
        return leadership

    def _follow_webhooks(self) -> None:
        try:
            hooks = {webhook_group(h.webhook_id): h for h in self._webhooks.active()}
        except Exception:
            log.exception("the webhooks could not be read; trying again")
            return
        for group, hook in hooks.items():
            if group not in self._consumers:
                consumer = self._consumer(group, partial(self._deliveries.deliver, hook))
                consumer.start()
                self._consumers[group] = consumer
                log.info("delivering to webhook %s (%s)", hook.webhook_id, hook.url)
        for group in [g for g in self._consumers if g.startswith(GROUP_PREFIX)]:
            if group not in hooks:
                self._consumers.pop(group).stop()
                self._stream.leave(group)

    def _sync_lake(self, received: Sequence[Received]) -> None:
        if any(r.message.kind in ("event", "erasure") for r in received):
            self._lake.sync()

    def prune(self) -> int:
        days = self._settings.deliveries_kept_days
        before = self._clock.now_ms() - int(days * 86_400_000)
        with self._storage.write() as uow:
            pruned = uow.webhooks.prune(before)
            uow.changes_profiles(())
        return pruned
