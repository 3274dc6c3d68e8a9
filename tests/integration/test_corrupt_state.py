"""State that cannot be decoded, recovered from a changelog into a new worker's RocksDB, is
answered as unknown by the HTTP API (never a 500) and does not stop the worker."""

from __future__ import annotations

import pytest

from state.item import ItemState
from streams.testing.harness import Cluster, fresh_settings
from streams.tools.cluster import get_json

pytestmark = pytest.mark.integration


def test_an_item_whose_state_cannot_be_decoded_is_answered_404(broker, tmp_path):
    cluster = Cluster(fresh_settings(broker, tmp_path))
    try:
        cluster.send("items_changelog", "corrupt-item", b"\xffnot a state")
        cluster.send("items_changelog", "sound-item", ItemState().to_bytes())
        worker = cluster.start_worker()  # recovers both records into its own RocksDB
        status, body = get_json(f"{worker.url}/items/corrupt-item/sentiment")
        assert status == 404 and "no readable state" in body["error"]
        sound = get_json(f"{worker.url}/items/sound-item/sentiment")
        assert sound[0] == 200, sound
        assert get_json(f"{worker.url}/readyz")[0] == 200
    finally:
        cluster.close()
