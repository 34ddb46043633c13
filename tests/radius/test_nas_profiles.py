"""NAS type profiles: the bundled file loads, renders exact values, and bad files are refused."""

from __future__ import annotations

import pytest

from billing.rates import RatePair
from radius.nas_profiles import GardenSettings, ProfileError, load, parse, profile_for

RATE = RatePair(20_000_000, 5_000_000)


def test_bundled_profiles_render_each_vendors_rate_form() -> None:
    profiles = load()
    assert set(profiles) == {"mikrotik", "accel-ppp", "wispr", "cisco", "juniper", "other"}
    assert profiles["mikrotik"].rate_reply(RATE) == [("Mikrotik-Rate-Limit", "5M/20M")]
    assert profiles["accel-ppp"].rate_reply(RatePair(1_500, 999)) == [("Filter-Id", "2/1")]
    assert profiles["other"].rate_reply(RATE) == []


@pytest.mark.parametrize(("nas_type", "settings", "can"), [
    ("mikrotik", GardenSettings(), True),
    ("accel-ppp", GardenSettings(), False),
    ("accel-ppp", GardenSettings(garden_pool="garden"), True),
    ("wispr", GardenSettings(), False),
    ("wispr", GardenSettings(garden_url="http://pay"), True),
    ("cisco", GardenSettings(), True),
    ("juniper", GardenSettings(), True),
    ("other", GardenSettings(garden_url="x", garden_pool="y"), False),
    ("no-such-type", GardenSettings(garden_url="x", garden_pool="y"), False),
])
def test_which_types_can_hold_a_subscriber_in_the_garden(nas_type: str,
                                                         settings: GardenSettings,
                                                         can: bool) -> None:
    assert profile_for(nas_type).can_garden(settings) is can


@pytest.mark.parametrize(("doc", "message"), [
    ({"other": {}}, "must define mikrotik"),
    ({"mikrotik": {}, "Bad Name": {}}, "1-16 of a-z"),
    ({"mikrotik": {"rate": [["Filter-Id", "{nope}"]]}}, "unknown placeholder nope"),
    ({"mikrotik": {"rate": [["Filter Id", "x"]]}}, "bad attribute name"),
    ({"mikrotik": {"rate": [["Filter-Id", 'a"b']]}}, "bad value"),
    ({"mikrotik": {"rate": "Filter-Id"}}, "must be a list"),
    ({"mikrotik": {"garden_requires": ["garden_colour"]}}, "garden_requires takes"),
    ({"mikrotik": {"colour": "red"}}, "unknown key 'colour'"),
])
def test_a_malformed_profile_file_is_refused_with_the_reason(doc: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse(doc)
