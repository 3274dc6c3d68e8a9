import hashlib
import json

from streams.learning.snapshot_topic import CHUNK_BYTES, MANIFEST_KEY, Progress, SnapshotAssembler, snapshot_records


def test_a_large_snapshot_travels_in_chunks_and_reassembles():
    data = bytes(range(256)) * ((3 * CHUNK_BYTES) // 256 + 7)
    records = snapshot_records(data, 7)
    assert len(records) == 5 and records[-1][0] == MANIFEST_KEY
    assert all(len(v) <= CHUNK_BYTES + 16 for _, v in records)
    assembler = SnapshotAssembler()
    results = [assembler.add(k, v) for k, v in records]
    assert results[:-1] == [None] * 4 and results[-1] == (7, data)
    assert assembler.newest == 7


def test_versions_interleaved_by_compaction_never_mix():
    old, new = b"o" * (CHUNK_BYTES + 10), b"n" * (CHUNK_BYTES + 20)
    a, b = snapshot_records(old, 1), snapshot_records(new, 2)
    assembler = SnapshotAssembler()
    # A reader starting mid-publication: chunk 0 of v2 overwrote v1's, then v1's manifest.
    assert assembler.add(*b[0]) is None
    assert assembler.add(*a[1]) is None
    assert assembler.add(*a[-1]) is None  # v1 lacks chunk 0 now: not assembled
    assert "chunks missing" in assembler.rejected[-1]
    assert assembler.add(*b[1]) is None
    assert assembler.add(*b[-1]) == (2, new)


def test_a_tampered_chunk_is_refused():
    records = snapshot_records(b"x" * 1000, 3)
    key, value = records[0]
    records[0] = (key, value[:-1] + b"y")
    assembler = SnapshotAssembler()
    assert [assembler.add(k, v) for k, v in records] == [None, None]
    assert "checksum" in assembler.rejected[-1]


def test_garbage_records_are_ignored():
    assembler = SnapshotAssembler()
    assert assembler.add(b"chunk/0", b"\x01") is None
    assert assembler.add(MANIFEST_KEY, b"{not json") is None
    assert assembler.add(None, b"x") is None and assembler.add(b"other", b"x") is None
    manifest = {"version": 1, "chunks": 1, "bytes": 0, "sha256": hashlib.sha256(b"").hexdigest()}
    assert assembler.add(MANIFEST_KEY, json.dumps(manifest).encode()) is None  # no chunk 0


def test_progress_round_trip():
    p = Progress(1.7e9, 512, 4)
    assert Progress.from_bytes(p.to_bytes()) == p
