"""What the code under test queued for django-q2, read from the run's own broker (the ORM
broker's table, or the Redis list in CI's second pass), never by replacing `async_task`.

    purge()       # empty the queue first: other tests' tasks wait in a shared Redis list
    ...           # the code under test queues tasks (after commit)
    taken()       # [(func, args), …] in queue order, removed from the queue
"""

from __future__ import annotations

from typing import Any

from django_q.brokers import get_broker
from django_q.signing import SignedPackage


def purge() -> None:
    get_broker().purge_queue()


def taken() -> list[tuple[str, tuple[Any, ...]]]:
    broker = get_broker()
    found: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(broker.queue_size() or 0):
        for ack_id, package in broker.dequeue() or []:
            task = SignedPackage.loads(package)
            found.append((task["func"], tuple(task["args"])))
            if ack_id is not None:
                broker.acknowledge(ack_id)
    return found
