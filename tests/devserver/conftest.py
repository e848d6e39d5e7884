"""Fixtures for the dev server's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from speckle_nb.devserver import DevServer


@pytest.fixture
def http(devserver: DevServer) -> Iterator[httpx.Client]:
    """A client that never follows redirects, so each hop can be asserted."""
    with httpx.Client(base_url=devserver.url, timeout=10) as client:
        yield client
