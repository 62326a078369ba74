"""Byte layout of a ring file. Every field is a little-endian u64 at a fixed offset.

::

    0      header          magic, version, slot_count, slot_size, write_seq,
                            producer_pid, producer_epoch, blocked_ns, dropped, ...,
                            consumers_gen (bumped on every change of the consumer table)
    512    consumers       MAX_CONSUMERS x 64 bytes: state, cursor, heartbeat_ns,
                            wakeup_pending, missed, name_hash
    2560   consumer names  MAX_CONSUMERS x 48 bytes (utf-8)
    4096   slot table      slot_count x 32 bytes: committed seq, nbytes, commit time (ns)
    ...    data            slot_count x slot_size, 4096-aligned

A slot holds the payload whose sequence number its table entry names; the
producer writes the payload first and the sequence number last (commit), and
only then advances ``write_seq``. On x86-64 aligned 8-byte stores are atomic
and not reordered with each other, which is what this protocol relies on.
"""

from __future__ import annotations

MAGIC = int.from_bytes(b"EDQRING1", "little")
VERSION = 2
PAGE = 4096

HEADER_WORDS = 64
MAGIC_W, VERSION_W, SLOT_COUNT_W, SLOT_SIZE_W, WRITE_SEQ_W = 0, 1, 2, 3, 4
PRODUCER_PID_W, PRODUCER_EPOCH_W, BLOCKED_NS_W, DROPPED_W, CREATED_NS_W = 5, 6, 7, 8, 9
WRITTEN_BYTES_W, PRODUCER_HEARTBEAT_W, CONSUMERS_GEN_W = 10, 11, 12

MAX_CONSUMERS = 32
CONSUMER_OFFSET = 512
CONSUMER_WORDS = 8
C_STATE, C_CURSOR, C_HEARTBEAT, C_WAKEUP, C_MISSED, C_NAME_HASH = 0, 1, 2, 3, 4, 5
NAMES_OFFSET = CONSUMER_OFFSET + MAX_CONSUMERS * CONSUMER_WORDS * 8
NAME_BYTES = 48

FREE, ACTIVE, EVICTED, DETACHED = 0, 1, 2, 3
"""Consumer entry states. Only the consumer itself makes an EVICTED or DETACHED entry ACTIVE
again (when it runs again); a producer registers only consumers it has never seen."""

SLOT_TABLE_OFFSET = PAGE
SLOT_TABLE_WORD = SLOT_TABLE_OFFSET // 8
CONSUMER_WORD = CONSUMER_OFFSET // 8
SLOT_WORDS = 4
S_SEQ, S_NBYTES, S_COMMIT_NS = 0, 1, 2
EMPTY_SEQ = (1 << 63) - 1


def data_offset(slot_count: int) -> int:
    table = slot_count * SLOT_WORDS * 8
    return SLOT_TABLE_OFFSET + -(-table // PAGE) * PAGE


def file_size(slot_count: int, slot_size: int) -> int:
    return data_offset(slot_count) + slot_count * slot_size
