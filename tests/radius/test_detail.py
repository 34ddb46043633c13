from radius.detail import complete_records, parse_record, unquote

SAMPLE = (
    b"Tue Nov 24 20:15:57 2026\n"
    b"\tPacket-Src-IP-Address = 127.0.0.1\n"
    b'\tUser-Name = "alice"\n'
    b"\tAcct-Status-Type = Start\n"
    b'\tAcct-Session-Id = "a\\"b\\\\c"\n'
    b"\tTimestamp = 1795551357\n"
    b"\n"
    b"Tue Nov 24 20:15:58 2026\n"
    b'\tUser-Name = "bob"\n'
)


def test_only_complete_records_are_returned_with_their_end_offset() -> None:
    records = list(complete_records(SAMPLE))
    assert len(records) == 1
    assert records[0].attrs == {
        "Packet-Src-IP-Address": "127.0.0.1",
        "User-Name": "alice",
        "Acct-Status-Type": "Start",
        "Acct-Session-Id": 'a"b\\c',
        "Timestamp": "1795551357",
    }
    assert records[0].end_offset == SAMPLE.index(b"Tue Nov 24 20:15:58")


def test_base_offset_is_added() -> None:
    (record,) = complete_records(SAMPLE, base_offset=1000)
    assert record.end_offset == 1000 + SAMPLE.index(b"Tue Nov 24 20:15:58")


def test_unquote_escapes_and_octal_utf8() -> None:
    assert unquote('"x\\ny"') == "x\ny"
    assert unquote('"caf\\303\\251"') == "café"
    assert unquote("plain") == "plain"
    # invalid UTF-8 is kept byte for byte (radius.bounds decides what to do with it)
    assert unquote('"\\377"') == "\udcff"
    assert unquote('"\\377"').encode("utf-8", "surrogateescape") == b"\xff"
    assert unquote('"\\303\\251"') == "\u00e9"


def test_first_value_wins_for_repeated_attributes() -> None:
    assert parse_record("h\n\tClass = 0x01\n\tClass = 0x02\n") == {"Class": "0x01"}
