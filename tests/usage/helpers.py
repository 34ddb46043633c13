"""Accounting records as the detail spool carries them, for the usage tests."""

from __future__ import annotations

import datetime as dt

G = 2**32


def acct(status: str, sid: str, user: str, at: dt.datetime, session_time: int = 0,
         upload: int = 0, download: int = 0, nas: str = "10.0.0.1") -> dict[str, str]:
    """One accounting request's attributes (64-bit counters split into Octets and
    Gigawords, as a NAS sends them)."""
    attrs = {"Packet-Src-IP-Address": nas, "Acct-Status-Type": status,
             "Timestamp": str(int(at.timestamp()))}
    if status in ("Accounting-On", "Accounting-Off"):
        return attrs
    return {**attrs, "User-Name": user, "Acct-Session-Id": sid,
            "Acct-Session-Time": str(session_time),
            "Acct-Input-Octets": str(upload & 0xFFFFFFFF),
            "Acct-Input-Gigawords": str(upload >> 32),
            "Acct-Output-Octets": str(download & 0xFFFFFFFF),
            "Acct-Output-Gigawords": str(download >> 32)}
