"""Vendor profiles as data, operator overrides, and the pure value conversions."""

from __future__ import annotations

import pytest

from olt import codec
from olt.profiles import PROFILES, profile
from radbill.errors import InvalidInput
from tests.olt.conftest import SNMP_PROFILES


def test_every_named_profile_exists_validates_and_marks_its_facts() -> None:
    assert set(SNMP_PROFILES) | {"vsol-epon"} == set(PROFILES)
    for name in SNMP_PROFILES:
        p = profile(name)
        assert p.snmp_block and p.block_oid and p.ident_oid
        assert p.fact("block") in ("device", "mib")
        assert set(p.facts.values()) <= {"device", "mib", "unknown"}
    assert profile("bdcom-epon").fact("block") == "device"  # Ubilling sets it
    assert profile("huawei-gpon").fact("block") == "mib"
    assert profile("bdcom-epon").save_oid == "1.3.6.1.4.1.3320.20.15.1.1.0"
    assert profile("huawei-gpon").save_oid is None and profile("zte-gpon").save_oid is None


def test_vsol_epon_is_declared_without_an_snmp_block() -> None:
    p = profile("vsol-epon")
    assert (p.snmp_block, p.block_mode, p.block_oid) == (False, "none", None)


def test_overrides_change_oids_and_values_without_code_and_are_marked() -> None:
    p = profile("zte-gpon", {"block_oid": "1.3.6.1.4.1.3902.1082.500.10.2.3.3.1.2",
                             "blocked_value": 3, "state_blocked_values": [3]})
    assert p.block_oid == "1.3.6.1.4.1.3902.1082.500.10.2.3.3.1.2"
    assert (p.blocked_value, p.state_blocked_values) == (3, (3,))
    assert p.fact("block_oid") == "operator" and p.fact("ident") == "device"
    assert PROFILES["zte-gpon"].blocked_value == 2  # the built-in profile is untouched


@pytest.mark.parametrize(("vendor", "overrides", "message"), [
    ("nokia-gpon", None, "unknown OLT vendor profile"),
    ("zte-gpon", {"block_oid": "iso.3.6"}, "not a numeric OID"),
    ("zte-gpon", {"colour": 1}, "not a profile field"),
    ("zte-gpon", {"blocked_value": 2**40}, "32-bit"),
    ("zte-gpon", {"block_mode": "none"}, "snmp_block"),
    ("zte-gpon", [1, 2], "JSON object"),
])
def test_bad_profiles_and_overrides_are_refused(vendor, overrides, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match=message):
        profile(vendor, overrides)


@pytest.mark.parametrize(("raw", "encoding", "scale", "absent", "dbm"), [
    (-215, "int", 0.1, (-(2**31),), -21.5),  # BDCOM EPON, 0.1 dBm
    (-(2**31), "int", 0.1, (-(2**31),), None),  # BDCOM: INT_MIN = offline
    (-2150, "int", 0.01, (2147483647,), -21.5),  # Huawei
    (2147483647, "int", 0.01, (2147483647,), None),
    (65535, "int", 0.01, (65535,), None),  # C-Data n/a
    (b"-27.50(dBm)", "string", 1.0, (), -27.5),  # VSOL
    (b"N/A", "string", 1.0, (), None),
    (4250, "zte", 1.0, (), -21.5),  # 4250 * 0.002 - 30
    (65535 - 1000, "zte", 1.0, (), -32.0),  # wraps: (raw - 65535) * 0.002 - 30
    (10**9, "int", 0.1, (), None),  # junk out of any optical range
])
def test_rx_power_decoding(raw, encoding, scale, absent, dbm) -> None:  # type: ignore[no-untyped-def]
    assert codec.rx_dbm(raw, encoding, scale, absent) == dbm


@pytest.mark.parametrize(("scheme", "slot", "pon", "onu", "index", "where"), [
    ("pon.onu", 0, 3, 7, "3.7", ("3", 7)),
    ("packed", 0, 2, 5, str(1 << 24 | 2 << 8 | 5), ("0/2", 5)),
    ("huawei", 1, 2, 9, f"{4194304000 + 8192 + 512}.9", ("0/1/2", 9)),
    ("zte", 1, 3, 4, f"{0x10000000 | 1 << 16 | 3 << 8}.4", ("1/1/3", 4)),
])
def test_index_schemes(scheme, slot, pon, onu, index, where) -> None:  # type: ignore[no-untyped-def]
    assert codec.index_for(scheme, slot, pon, onu) == index
    assert codec.pon_onu(scheme, index) == where


def test_bdcom_ifdescr_names_pon_and_onu() -> None:
    assert codec.pon_onu("ifdescr", "17", "EPON0/3:12") == ("0/3", 12)
    assert codec.pon_onu("ifdescr", "17", "GigaEthernet0/1") is None
    assert codec.pon_onu("ifdescr", "17", "EPON0/3:99999999999") is None


@pytest.mark.parametrize(("scheme", "index"), [
    ("pon.onu", "1.99999999999"), ("huawei", "4194304256.-1"), ("zte", "12.3"),
    ("huawei", "1.2"), ("pon.onu", "x.y"), ("packed", "1.2.3")])
def test_indexes_that_do_not_fit_give_no_pon(scheme, index) -> None:  # type: ignore[no-untyped-def]
    assert codec.pon_onu(scheme, index) is None


@pytest.mark.parametrize(("text", "serial"), [
    ("hwtc1a2b3c4d", "HWTC1A2B3C4D"), ("485754431A2B3C4D", "HWTC1A2B3C4D"),
    ("ZTEG-C0FFEE01", "ZTEGC0FFEE01")])
def test_serials_normalize(text, serial) -> None:  # type: ignore[no-untyped-def]
    assert codec.normalize_serial(text) == serial


@pytest.mark.parametrize("text", ["HWTC1A2B", "HWTC1A2B3C4Z", "", "x" * 200])
def test_malformed_serials_are_refused(text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput, match="not a GPON serial"):
        codec.normalize_serial(text)


def test_identities_round_trip_through_the_olt_encodings() -> None:
    assert codec.normalize_mac("AABB.CCDD.EEFF") == "aa:bb:cc:dd:ee:ff"
    for ident, enc in (("HWTC1A2B3C4D", "hex"), ("ZTEGC0FFEE01", "text"),
                       ("aa:bb:cc:dd:ee:ff", "mac")):
        assert codec.ident_from_snmp(codec.ident_to_snmp(ident, enc), enc) == ident
    assert codec.ident_from_snmp(b"\x01\x02", "mac") is None
