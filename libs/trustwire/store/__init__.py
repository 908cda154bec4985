"""Storage: the key-value contract (``KeyValueStore``) and its backends.

``trustwire.store.memory.MemoryStore`` for unit tests and ``trustwire.store.etcd.EtcdStore``
(the only module that imports the etcd client) for everything real. Repositories of the
services (policies, PUs, enforcers, join tokens, revocations) are built on the contract.
"""

from ._interface import (
    ABSENT,
    Compare,
    Delete,
    Entry,
    Event,
    EventType,
    KeyValueStore,
    Page,
    Put,
    TxnResult,
)

__all__ = [
    "ABSENT",
    "Compare",
    "Delete",
    "Entry",
    "Event",
    "EventType",
    "KeyValueStore",
    "Page",
    "Put",
    "TxnResult",
]
