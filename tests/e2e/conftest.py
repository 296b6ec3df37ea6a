"""End-to-end tests run the real ``veilleur`` process against local servers.

They reuse the integration fixtures (moto server, dummy credentials, topic/bus factories).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import (  # noqa: F401 - fixtures
    _client_cache,
    aws_client,
    aws_env,
    aws_session,
    bus_rule_to_queue,
    moto_server,
    moto_url,
    receive_until,
    sns_topic_to_queue,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
