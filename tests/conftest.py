"""Shared pytest settings. Hardware tests are opt-in: ``pytest --device PORT`` (never faked)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", action="store", default=None, metavar="PORT",
                     help="run hardware tests against the device on PORT (a serial port or pyserial URL)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--device"):
        return
    skip = pytest.mark.skip(reason="hardware test: give --device PORT to run it")
    for item in items:
        if "device" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device_port(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--device")
