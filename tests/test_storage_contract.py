"""Guarantees every storage backend gives the orchestration, checked against each real server."""

from __future__ import annotations

import threading

from modelreg.errors import AlreadyExists
from modelreg.storage import open_storage


def test_racing_create_only_writers_exactly_one_wins(remote):
    storage = open_storage(remote)
    outcomes = []
    barrier = threading.Barrier(4)

    def publish(index: int) -> None:
        barrier.wait()
        try:
            storage.write("models/m/v1/manifest.json", f"writer {index}".encode(), create_only=True)
            outcomes.append("won")
        except AlreadyExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 3 + ["won"]
    assert storage.list("models/") == ["models/m/v1/manifest.json"]
    storage.close()
