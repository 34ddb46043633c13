"""Gateway configuration: per ISP from a file, sandbox or live, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payments.config import configured, load_configs
from radbill.config import ConfigError, Settings


def test_sandbox_live_switch_and_overrides() -> None:
    got = load_configs({"bkash": {"credentials": {"app_key": "k"}},
                        "sslcommerz": {"sandbox": False},
                        "nagad": {"base_url": "http://127.0.0.1:9/nagad/", "timeout": 3}})
    assert got["bkash"].base_url == "https://tokenized.sandbox.bka.sh/v1.2.0-beta"
    assert got["bkash"].sandbox and got["bkash"].credentials == {"app_key": "k"}
    assert got["sslcommerz"].base_url == "https://securepay.sslcommerz.com"
    assert not got["sslcommerz"].sandbox
    assert (got["nagad"].base_url, got["nagad"].timeout) == ("http://127.0.0.1:9/nagad", 3.0)


@pytest.mark.parametrize(("data", "message"), [
    ({"paypal": {}}, "unknown gateway 'paypal'"),
    ({"bkash": "yes"}, "bkash must be an object"),
    ({"bkash": {"sandbox": "no"}}, "sandbox must be true or false"),
    ({"bkash": {"credentials": {"app_key": 1}}}, "credentials must be strings"),
])
def test_bad_configuration_is_refused_clearly(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        load_configs(data)


def test_file_per_isp(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="sqlite://")
    assert configured(settings) == {}
    (tmp_path / "gateways.json").write_text(json.dumps({"razorpay": {"credentials": {}}}))
    assert list(configured(settings)) == ["razorpay"]
    (tmp_path / "gateways.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"gateways\.json"):
        configured(settings)
