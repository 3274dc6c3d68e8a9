"""Which exceptions are the disk failing (fail-stop) rather than an event failing (dead letter)."""

from __future__ import annotations

import errno

from streams.errors import InvalidEvent, is_storage_failure


def test_rocksdb_io_errors_and_disk_os_errors_are_storage_failures():
    assert is_storage_failure(Exception("IO error: No space left on device: While appending to file: x.log"))
    assert is_storage_failure(OSError(errno.ENOSPC, "No space left on device"))
    assert is_storage_failure(OSError(errno.EROFS, "Read-only file system"))


def test_errors_of_events_and_code_are_not():
    assert not is_storage_failure(InvalidEvent("bad_json", "not JSON"))
    assert not is_storage_failure(ValueError("IO error: a value that quotes RocksDB"))
    assert not is_storage_failure(KeyError("IO error"))
    assert not is_storage_failure(OSError(errno.ECONNREFUSED, "Connection refused"))
    assert not is_storage_failure(Exception("Corruption: bad block"))
