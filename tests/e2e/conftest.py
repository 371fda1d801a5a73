"""pytest setup for the end-to-end tests: where the gannet binary and the fixtures are."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gannet_bin() -> Path:
    path = Path(os.environ.get("GANNET_BIN", ROOT / "build" / "bin" / "gannet"))
    if not path.is_file():
        pytest.fail(f"gannet binary not found at {path}; build first or set GANNET_BIN")
    return path


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return ROOT / "tests" / "fixtures"
