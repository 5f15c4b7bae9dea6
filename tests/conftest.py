"""Test session settings: caches under the session's temporary folder, never the user's home."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _row_cache_in_tmp(tmp_path_factory):
    previous = os.environ.get("RAGAR_CACHE_DIR")
    os.environ["RAGAR_CACHE_DIR"] = str(tmp_path_factory.mktemp("ragar_cache"))
    yield
    if previous is None:
        os.environ.pop("RAGAR_CACHE_DIR", None)
    else:
        os.environ["RAGAR_CACHE_DIR"] = previous
