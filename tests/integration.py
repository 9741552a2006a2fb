"""The one rule for what a test needs from outside the project (a server, a binary, a file).

When it is missing, the test skips and says what it needs; under REQUIRE_INTEGRATION=1 (CI, set
by .ci/run) it fails instead, because there a skip would hide a broken install.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "REQUIRE_INTEGRATION"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail with it under REQUIRE_INTEGRATION=1."""
    if required():
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 forbids skipping", pytrace=False)
    pytest.skip(reason)
