"""Shared pytest fixtures."""

from __future__ import annotations

import pytest

from http_server import LoopbackServer


@pytest.fixture
def loopback_server(tmp_path):
    """A started LoopbackServer (127.0.0.1, ephemeral port) serving tmp_path/'served'.

    Stopped after the test, so no thread or socket outlives it.
    """
    root = tmp_path / "served"
    root.mkdir()
    server = LoopbackServer(root=root).start()
    try:
        yield server
    finally:
        server.stop()
