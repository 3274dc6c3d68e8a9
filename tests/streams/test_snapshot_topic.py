import hashlib
import json
import struct

import pytest

from streams.learning.snapshot_topic import (
    CHUNK_BYTES,
    DELTA_PREFIX,
    MANIFEST_KEY,
    MAX_CHUNKS,
    PENDING_VERSIONS,
    Progress,
    Published,
    SignatureError,
    SnapshotAssembler,
    snapshot_records,
)

KEY = b"k" * 32
OTHER = b"o" * 32


def test_a_large_snapshot_travels_in_chunks_and_reassembles():
    data = bytes(range(256)) * ((3 * CHUNK_BYTES) // 256 + 7)
    records = snapshot_records(data, 7, KEY)
    assert [k for k, _ in records[-2:]] == [MANIFEST_KEY, DELTA_PREFIX + MANIFEST_KEY] and len(records) == 6
    assert records[-1][1] is None  # the tombstone of the delta before it
    assert all(len(v or b"") <= CHUNK_BYTES + 16 + 32 for _, v in records)
    assembler = SnapshotAssembler(KEY)
    results = [assembler.add(k, v) for k, v in records]
    assert results[:4] == [None] * 4 and results[4] == Published(7, data) and results[5] is None
    assert assembler.newest == 7 and assembler.rejected == [] and assembler.pending_bytes == 0


def test_versions_interleaved_by_compaction_never_mix():
    old, new = b"o" * (CHUNK_BYTES + 10), b"n" * (CHUNK_BYTES + 20)
    a, b = snapshot_records(old, 1, KEY), snapshot_records(new, 2, KEY)
    assembler = SnapshotAssembler(KEY)
    # A reader starting mid-publication: chunk 0 of v2 overwrote v1's, then v1's manifest.
    assert assembler.add(*b[0]) is None
    assert assembler.add(*a[1]) is None
    assert assembler.add(*a[-2]) is None  # v1 lacks chunk 0 now: not assembled
    assert assembler.rejected[-1].reason == "incomplete"
    assert assembler.add(*b[1]) is None
    assert assembler.add(*b[-2]) == Published(2, new)


def reasons(assembler: SnapshotAssembler) -> list[str]:
    return [r.reason for r in assembler.rejected]


def test_a_tampered_chunk_is_refused_and_never_held():
    records = snapshot_records(b"x" * 1000, 3, KEY)
    key, value = records[0]
    records[0] = (key, value[:-1] + b"y")
    assembler = SnapshotAssembler(KEY)
    assert [assembler.add(k, v) for k, v in records] == [None, None, None]
    assert reasons(assembler) == ["bad_signature", "incomplete"]
    assert assembler.pending_bytes == 0


def test_a_snapshot_signed_with_another_key_is_refused():
    assembler = SnapshotAssembler(KEY)
    assert all(assembler.add(k, v) is None for k, v in snapshot_records(b"x" * 1000, 3, OTHER))
    assert reasons(assembler) == ["bad_signature", "bad_signature"]
    assert assembler.newest == 0  # a forged version does not move the trainer's next version


def test_an_unsigned_snapshot_of_the_old_format_is_refused():
    """Chunks and a manifest as published before snapshots were signed: a valid SHA-256 only."""
    data = b"x" * 1000
    assembler = SnapshotAssembler(KEY)
    assembler.add(b"chunk/0", struct.pack("<QII", 2**64 - 1, 0, 1) + data)
    manifest = {"version": 2**64 - 1, "chunks": 1, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert assembler.add(MANIFEST_KEY, json.dumps(manifest).encode()) is None
    assert reasons(assembler) == ["bad_signature", "unsigned"] and assembler.newest == 0


def test_garbage_records_are_counted_not_raised():
    assembler = SnapshotAssembler(KEY)
    assert assembler.add(b"chunk/0", b"\x01") is None
    assert assembler.add(MANIFEST_KEY, b"{not json") is None
    assert assembler.add(MANIFEST_KEY, b'{"version": [1], "chunks": 1, "bytes": 0, "hmac": "zz"}') is None
    assert assembler.add(MANIFEST_KEY, b"[" * 100_000) is None
    assert assembler.add(None, b"x") is None and assembler.add(b"other", b"x") is None
    assert reasons(assembler) == ["unsigned", "malformed", "malformed", "malformed"]


def test_signed_records_out_of_bounds_are_refused():
    """Even with the key, a chunk count above the bound or a manifest that does not add up is refused."""
    from streams.learning import snapshot_topic as st

    assembler = SnapshotAssembler(KEY)
    head = struct.pack("<QII", 5, 0, MAX_CHUNKS + 1)
    assembler.add(b"chunk/0", head + st._mac(KEY, st._CHUNK_DOMAIN, head, b"x") + b"x")
    [(_, chunk), _, _] = snapshot_records(b"abc", 6, KEY)
    assembler.add(b"chunk/0", chunk)
    lying = st._signed_json(KEY, st._MANIFEST_DOMAIN, {"version": 6, "chunks": 1, "bytes": 4})
    assert assembler.add(MANIFEST_KEY, lying) is None
    assert reasons(assembler) == ["too_large", "malformed"]
    with pytest.raises(ValueError):
        snapshot_records(b"x", 2**64 - 1, KEY)  # the trainer never publishes a version that cannot grow


def test_the_assembler_holds_chunks_of_a_bounded_number_of_versions():
    assembler = SnapshotAssembler(KEY)
    for version in range(1, 20):
        records = snapshot_records(b"v" * (2 * CHUNK_BYTES), version, KEY)
        assembler.add(*records[0])  # a first chunk, never completed
    assert assembler.pending_bytes == PENDING_VERSIONS * CHUNK_BYTES


def test_progress_is_signed():
    p = Progress(1.7e9, 512, 4)
    assert Progress.from_bytes(p.to_bytes(KEY), KEY) == p
    with pytest.raises(SignatureError) as wrong:
        Progress.from_bytes(p.to_bytes(OTHER), KEY)
    with pytest.raises(SignatureError) as unsigned:
        Progress.from_bytes(b'{"trained_until": 1.0, "examples": 1, "version": 1}', KEY)
    assert (wrong.value.reason, unsigned.value.reason) == ("bad_signature", "unsigned")


def test_a_delta_travels_under_its_own_keys_and_names_its_base():
    data = b"d" * (CHUNK_BYTES + 5)
    records = snapshot_records(data, 9, KEY, base=4)
    assert [k for k, _ in records] == [b"delta/chunk/0", b"delta/chunk/1", b"delta/manifest"]
    assembler = SnapshotAssembler(KEY)
    assert [assembler.add(k, v) for k, v in records] == [None, None, Published(9, data, base=4)]
    assert assembler.newest == 9 and assembler.rejected == [] and assembler.pending_bytes == 0
    with pytest.raises(ValueError):
        snapshot_records(data, 9, KEY, base=9)  # a delta applies to an older full snapshot


def test_no_record_of_a_delta_passes_for_one_of_a_full_snapshot_nor_the_reverse():
    full, delta = snapshot_records(b"f" * 100, 5, KEY), snapshot_records(b"d" * 100, 6, KEY, base=5)
    assembler = SnapshotAssembler(KEY)
    assembler.add(b"chunk/0", delta[0][1])  # a delta's chunk under a full snapshot's key
    assembler.add(b"delta/chunk/0", full[0][1])
    assert assembler.add(MANIFEST_KEY, delta[-1][1]) is None  # a delta's manifest as a full one's
    assert assembler.add(b"delta/manifest", full[-2][1]) is None
    assert reasons(assembler) == ["bad_signature", "bad_signature", "bad_signature", "malformed"]
    assert assembler.newest == 0 and assembler.pending_bytes == 0


def test_a_delta_signed_with_another_key_or_unsigned_is_refused():
    assembler = SnapshotAssembler(KEY)
    for key, value in snapshot_records(b"d" * 100, 6, OTHER, base=5):
        assert assembler.add(key, value) is None
    unsigned = json.dumps({"version": 7, "chunks": 1, "bytes": 100, "base": 5}).encode()
    assert assembler.add(b"delta/manifest", unsigned) is None
    assert reasons(assembler) == ["bad_signature", "bad_signature", "unsigned"] and assembler.newest == 0


def test_a_full_snapshot_and_the_deltas_after_it_assemble_in_order():
    assembler = SnapshotAssembler(KEY)
    out = []
    for version, base in ((3, None), (4, 3), (5, 3), (6, None), (7, 6)):
        out += [assembler.add(k, v) for k, v in snapshot_records(bytes([version]) * 10, version, KEY, base)]
    assert [(p.version, p.base) for p in out if p is not None] == [(3, None), (4, 3), (5, 3), (6, None), (7, 6)]
