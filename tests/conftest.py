"""Shared pytest settings. Hardware tests are opt-in: ``pytest --device PORT`` (never faked)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", action="store", default=None, metavar="PORT",
                     help="run hardware tests against the device on PORT (a serial port or pyserial URL)")
    parser.addoption("--device-model", action="store", default=None, choices=("ne1000", "alicat", "hmt330"),
                     help="which device is on --device PORT")
    parser.addoption("--device-baud", action="store", type=int, default=None, help="its baud rate (default: the model's)")
    parser.addoption("--device-address", action="store", type=int, default=None,
                     help="its address on a multi-drop line (NE-1000 0-99), if it has one")


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


@pytest.fixture
def device_model(request: pytest.FixtureRequest) -> str | None:
    return request.config.getoption("--device-model")


@pytest.fixture
def device_address(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--device-address")


@pytest.fixture
def device_baud(request: pytest.FixtureRequest) -> int | None:
    return request.config.getoption("--device-baud")
