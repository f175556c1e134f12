"""Shared pytest fixtures."""

from __future__ import annotations

import pytest
import torch
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tiny-tensor model tests on one torch thread, restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
