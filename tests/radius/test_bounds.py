"""Every field is validated and bounded before it reaches the database: one test per rule,
with exact values at each boundary."""

from __future__ import annotations

import datetime as dt

import pytest

from radius.accounting import (
    INTERIM,
    START,
    STOP,
    AcctRecord,
    ImplausibleRecord,
    InvalidRecord,
    Limits,
    SessionState,
    checked_fold,
    fold,
    implausible_jump,
    record_from_attrs,
)
from radius.bounds import display_text, ip_address, key_text, received_at, unsigned
from radius.postauth import row_from_attrs

T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
G = 2**32
BASE = {"Packet-Src-IP-Address": "10.1.1.1", "Acct-Status-Type": "Interim-Update",
        "User-Name": "alice", "Acct-Session-Id": "81a00001"}


def parse(**attrs: str) -> AcctRecord:
    return record_from_attrs({**BASE, **{k.replace("_", "-"): v for k, v in attrs.items()}}, T0)


# -- counters -------------------------------------------------------------------------------


def test_the_largest_storable_counter_is_accepted_exactly() -> None:
    r = parse(Acct_Input_Gigawords=str(2**31 - 1), Acct_Input_Octets=str(G - 1))
    assert r.input_octets == 2**63 - 1


@pytest.mark.parametrize("gigawords", [2**31, 2**32 - 1])
def test_gigawords_that_overflow_64_bit_signed_are_refused(gigawords: int) -> None:
    with pytest.raises(InvalidRecord, match=rf"Acct-Output-Gigawords={gigawords} makes a "
                       rf"counter of {gigawords * G} bytes \(at most 2\^63-1\)"):
        parse(Acct_Output_Gigawords=str(gigawords))


def test_gigawords_beyond_32_bits_are_out_of_range() -> None:
    with pytest.raises(InvalidRecord, match=r"Acct-Input-Gigawords='4294967296' is outside "
                       r"0\.\.4294967295"):
        parse(Acct_Input_Gigawords=str(G))


@pytest.mark.parametrize("raw", [" 5", "+5", "-1", "1_000", "\u0663", "5.0", "0x10", "1e3"])
def test_integers_are_plain_ascii_digits(raw: str) -> None:
    with pytest.raises(InvalidRecord, match="is not a number"):
        unsigned({"Acct-Session-Time": raw}, "Acct-Session-Time")


def test_integer_bounds() -> None:
    assert unsigned({}, "Acct-Session-Time") == 0
    assert unsigned({"X": ""}, "X") == 0
    assert unsigned({"X": "4294967295"}, "X") == 2**32 - 1
    with pytest.raises(InvalidRecord, match="outside"):
        unsigned({"X": "4294967296"}, "X")
    with pytest.raises(InvalidRecord, match="outside"):
        unsigned({"X": "9" * 5000}, "X")  # no int() of a huge string


def test_leading_zeros_are_bounded_by_length() -> None:
    # more than 20 digits is refused outright, whatever its value
    assert unsigned({"X": "0" * 19 + "7"}, "X") == 7
    with pytest.raises(InvalidRecord, match="outside"):
        unsigned({"X": "0" * 20 + "7"}, "X")


@pytest.mark.parametrize("name", ["Acct-Session-Time", "Acct-Delay-Time",
                                  "Acct-Input-Packets", "Acct-Output-Packets"])
def test_every_integer_attribute_is_checked(name: str) -> None:
    with pytest.raises(InvalidRecord, match=name):
        record_from_attrs({**BASE, name: "4294967296"}, T0)


# -- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["User-Name", "Acct-Session-Id"])
def test_a_nul_in_a_key_makes_the_record_unusable(name: str) -> None:
    with pytest.raises(InvalidRecord, match=rf"{name}='al\\x00ice' contains a NUL byte"):
        record_from_attrs({**BASE, name: "al\x00ice"}, T0)


@pytest.mark.parametrize("name", ["User-Name", "Acct-Session-Id"])
def test_trailing_nuls_of_a_key_are_a_c_string_terminator(name: str) -> None:
    r = record_from_attrs({**BASE, name: "alice\x00\x00"}, T0)
    assert (r.username if name == "User-Name" else r.acct_session_id) == "alice"
    for value in ("\x00", "\x00alice", "al\x00ice\x00"):
        with pytest.raises(InvalidRecord, match="contains a NUL byte"):
            record_from_attrs({**BASE, name: value}, T0)


@pytest.mark.parametrize("name", ["User-Name", "Acct-Session-Id"])
def test_keys_up_to_253_characters_are_kept_exactly(name: str) -> None:
    r = record_from_attrs({**BASE, name: "k" * 253}, T0)
    assert (r.username if name == "User-Name" else r.acct_session_id) == "k" * 253
    with pytest.raises(InvalidRecord, match=f"{name} is 254 characters long"):
        record_from_attrs({**BASE, name: "k" * 254}, T0)


@pytest.mark.parametrize("name", ["User-Name", "Acct-Session-Id"])
def test_a_key_that_is_not_utf8_is_refused_but_utf8_is_kept(name: str) -> None:
    latin1 = b"jos\xe9".decode("utf-8", "surrogateescape")  # as radius.detail hands it over
    with pytest.raises(InvalidRecord, match=rf"{name}='jos\\udce9' is not UTF-8"):
        record_from_attrs({**BASE, name: latin1}, T0)
    r = record_from_attrs({**BASE, name: "josé"}, T0)
    assert (r.username if name == "User-Name" else r.acct_session_id) == "josé"


def test_display_text_that_is_not_utf8_gets_replacement_characters() -> None:
    raw = b"port-\xff\xfe-\xc3\xa9".decode("utf-8", "surrogateescape")
    assert display_text(raw, 253) == "port-\ufffd\ufffd-\u00e9"
    assert parse(NAS_Port_Id=raw).nas_port_id == "port-\ufffd\ufffd-\u00e9"


def test_key_text_absent_or_empty_is_none() -> None:
    assert key_text({}, "User-Name") is None
    assert key_text({"User-Name": ""}, "User-Name") is None


# -- display text ---------------------------------------------------------------------------


def test_long_calling_station_and_nas_port_ids_are_kept_up_to_253() -> None:
    port = "ether1-vlan100 pppoe-server dhaka-fiber-residential-" + "x" * 200  # 251 chars
    r = parse(Calling_Station_Id="c" * 253, NAS_Port_Id=port)
    assert r.calling_station_id == "c" * 253 and r.nas_port_id == port
    r = parse(Calling_Station_Id="c" * 300, NAS_Port_Id="p" * 254)
    assert r.calling_station_id == "c" * 253 and r.nas_port_id == "p" * 253


def test_nul_in_display_text_trailing_dropped_inner_replaced() -> None:
    assert display_text("AA:BB:CC:DD:EE:FF\x00\x00", 253) == "AA:BB:CC:DD:EE:FF"
    assert display_text("ether\x001", 253) == "ether\ufffd1"
    assert display_text("\x00", 253) is None
    assert display_text("", 253) is None
    assert display_text(None, 253) is None
    r = parse(Calling_Station_Id="AA:BB\x00", NAS_Port_Id="a\x00b",
              Acct_Terminate_Cause="User-Request\x00")
    assert (r.calling_station_id, r.nas_port_id, r.terminate_cause) == (
        "AA:BB", "a\ufffdb", "User-Request")


def test_terminate_cause_is_cut_to_its_column() -> None:
    assert parse(Acct_Terminate_Cause="t" * 40).terminate_cause == "t" * 32


# -- addresses and times --------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "kept"), [
    ("10.9.0.1", "10.9.0.1"), ("2001:db8::1", "2001:db8::1"), ("2001:DB8:0::1", "2001:db8::1"),
    ("10.9.0.256", None), ("10.9.0.1\x00", None), ("not-an-ip", None), ("1" * 46, None),
    ("", None)])
def test_framed_ip_is_a_valid_address_or_nothing(raw: str, kept: str | None) -> None:
    assert ip_address(raw) == kept
    assert parse(Framed_IP_Address=raw).framed_ip == kept


def test_the_dotted_quad_fast_path_agrees_with_ipaddress() -> None:
    import ipaddress
    import random

    def reference(value: str) -> str | None:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return None

    rnd = random.Random(1)
    octet = [lambda: str(rnd.randint(0, 300)), lambda: f"0{rnd.randint(0, 9)}", lambda: "",
             lambda: "x", lambda: "\u0661", lambda: "+1", lambda: " 1"]
    cases = ["0.0.0.0",  # noqa: S104 - a string to check, nothing binds
             "255.255.255.255", "1.1.1.001", "1.1.1", "1.1.1.1.1"] + [
        ".".join(rnd.choice(octet)() for _ in range(4)) for _ in range(5000)]
    assert [c for c in cases if ip_address(c) != reference(c)] == []


def test_the_nas_address_must_be_an_ip_address() -> None:
    with pytest.raises(InvalidRecord, match="NAS address 'nas-1' is not an IP address"):
        record_from_attrs({**BASE, "Packet-Src-IP-Address": "nas-1"}, T0)


def test_detail_timestamp() -> None:
    assert received_at({"Timestamp": "1795551357"}) == dt.datetime.fromtimestamp(1795551357,
                                                                                 dt.UTC)
    assert received_at({"Timestamp": "32503680000"}).year == 3000
    for raw in ("32503680001", "99999999999999999999", "-5", "12:00"):
        with pytest.raises(InvalidRecord, match="is not a time"):
            received_at({"Timestamp": raw})


def test_unknown_status_type_is_refused_and_quoted_short() -> None:
    with pytest.raises(InvalidRecord, match=r"Acct-Status-Type 'x{40}' is not handled"):
        parse(Acct_Status_Type="x" * 500)


# -- post-auth ------------------------------------------------------------------------------


def test_postauth_rows_are_bounded_never_refused() -> None:
    row = row_from_attrs({
        "Timestamp": "1795551357", "Radbill-User-Name": "al\x00ice" + "u" * 300,
        "Radbill-NAS-Address": "garbage", "Radbill-Calling-Station": "c" * 300 + "\x00",
        "Radbill-Decision": "accept\x00", "Radbill-Reason": "r" * 100,
        "Reply-Message": "m" * 2000, "Radbill-Auth-Method": "PAP" * 10,
        "Mikrotik-Rate-Limit": "9" * 200})
    assert row["username"] == "al\ufffdice" + "u" * 247
    assert len(row["username"]) == 253
    assert row["nas_ip"] is None
    assert row["calling_station_id"] == "c" * 253
    assert row["decision"] == "accept"
    assert row["reason"] == "r" * 64
    assert row["reply_message"] == "m" * 1000
    assert row["auth_method"] == ("PAP" * 10)[:16]
    assert row["rate_limit"] == "9" * 128


def test_postauth_row_defaults() -> None:
    row = row_from_attrs({"Timestamp": "1795551357"})
    assert (row["username"], row["decision"], row["reason"], row["nas_ip"]) == (
        "", "reject", "unknown", None)


def test_postauth_with_a_corrupt_timestamp_is_refused() -> None:
    with pytest.raises(InvalidRecord, match="Timestamp"):
        row_from_attrs({"Timestamp": "soon"})


# -- plausible counters ---------------------------------------------------------------------

GBIT = Limits(max_bits_per_second=8 * 10**9, slack_seconds=60)  # 1 GB/s: round numbers
GB = 10**9


def interim(minutes: float, inp: int, out: int = 0, session_time: int | None = None
            ) -> AcctRecord:
    return AcctRecord(status=INTERIM, nas_ip="10.1.1.1", username="alice",
                      acct_session_id="81a00001",
                      event_time=T0 + dt.timedelta(seconds=round(minutes * 60)),
                      session_time=round(minutes * 60) if session_time is None else session_time,
                      input_octets=inp, output_octets=out)


def started() -> SessionState:
    return fold(None, AcctRecord(status=START, nas_ip="10.1.1.1", username="alice",
                                 acct_session_id="81a00001", event_time=T0))


def test_growth_up_to_the_line_rate_over_the_interval_plus_slack_is_plausible() -> None:
    state = started()
    # 5 minutes + 60 s slack at 1 GB/s: exactly 360 GB may arrive, one byte more may not
    ok = interim(5, 360 * GB)
    assert checked_fold(state, ok, GBIT).input_octets == 360 * GB
    with pytest.raises(ImplausibleRecord, match=r"input counter jumps by 360000000001 bytes "
                       r"in 300 s \(more than 8000000000 bit/s\)"):
        checked_fold(state, interim(5, 360 * GB + 1), GBIT)


def test_each_direction_is_checked() -> None:
    with pytest.raises(ImplausibleRecord, match="output counter"):
        checked_fold(started(), interim(5, 0, 360 * GB + 1), GBIT)


def test_the_issue_example_gigawords_2_31_minus_1_in_one_interim_is_set_aside() -> None:
    after_five = checked_fold(started(), interim(5, 10 * GB), Limits())
    bogus = interim(10, (2**31 - 1) * G)
    with pytest.raises(ImplausibleRecord):
        checked_fold(after_five, bogus, Limits())
    # the session keeps its previous counters: the next real Interim continues from them
    nxt = checked_fold(after_five, interim(15, 30 * GB), Limits())
    assert nxt.input_octets == 30 * GB


def test_interims_held_back_by_the_nas_count_their_session_time() -> None:
    # three Interims received within a second: the NAS's session time says 5 minutes apart
    state = checked_fold(started(), interim(5, 300 * GB), GBIT)
    late = AcctRecord(status=INTERIM, nas_ip="10.1.1.1", username="alice",
                      acct_session_id="81a00001", event_time=state.updated_at,
                      session_time=600, input_octets=660 * GB)
    assert checked_fold(state, late, GBIT).input_octets == 660 * GB


def test_a_garbage_session_time_cannot_excuse_a_garbage_counter() -> None:
    state = checked_fold(started(), interim(5, GB), GBIT)
    # claims 136 years of session: counts only as far as the session's age (10 min)
    liar = interim(10, 661 * GB + 1, session_time=2**32 - 1)
    with pytest.raises(ImplausibleRecord, match="jumps by 660000000001 bytes in 600 s"):
        checked_fold(state, liar, GBIT)
    assert checked_fold(state, interim(10, 661 * GB, session_time=2**32 - 1),
                        GBIT).input_octets == 661 * GB


def test_a_first_record_is_measured_over_its_own_session_time_capped_at_a_year() -> None:
    assert implausible_jump(None, fold(None, interim(5, 360 * GB)), interim(5, 360 * GB),
                            GBIT) is None
    first = interim(5, 360 * GB + 1)
    assert implausible_jump(None, fold(None, first), first, GBIT) is not None
    year = 366 * 86400
    ancient = interim(5, (year + 60) * GB + 1, session_time=2**32 - 1)
    assert "in 31622400 s" in str(implausible_jump(None, fold(None, ancient), ancient, GBIT))


def test_stop_and_reordered_records_are_checked_the_same_way() -> None:
    state = checked_fold(started(), interim(5, GB), GBIT)
    stop = AcctRecord(status=STOP, nas_ip="10.1.1.1", username="alice",
                      acct_session_id="81a00001", event_time=T0 + dt.timedelta(minutes=6),
                      session_time=360, input_octets=(2**31 - 1) * G)
    with pytest.raises(ImplausibleRecord):
        checked_fold(state, stop, GBIT)
    older = interim(2, GB // 2)  # arrives late with smaller counters: nothing grows
    assert checked_fold(state, older, GBIT) is state


def test_the_limit_comes_from_the_settings() -> None:
    from radbill.config import Settings

    s = Settings.from_env({"RADBILL_ACCT_MAX_MBPS": "2500"})
    assert Limits.from_settings(s).max_bits_per_second == 2_500_000_000
    assert Limits.from_settings(Settings.from_env({})).max_bits_per_second == 100 * 10**9
