"""SSL Wireless ISMS Plus API v3, simulated from its documentation (FIELD-NOTES; the
vendor's own clients ``sslw/ismsplus_api``): ``/api/v3/send-sms`` (one message),
``/api/v3/send-sms/bulk`` (one text, up to 100 numbers, ``batch_csms_id``),
``/api/v3/send-sms/dynamic`` (up to 100 ``{msisdn, text, csms_id}``).

Rules enforced: the API token (4001) and SID (4002), the client IP when a list is set (4003),
required parameters (4022), ``csms_id`` at most 20 characters and unique per day (4023), the
MSISDN (4025 invalid, 4026 blocked), the length (4027, over ``max_parts`` parts), requests per
second (4029) and messages per second (4031), and the balance (in parts). The balance answer's
code is not in our sources: it is a parameter (the adapter also recognises the words). A
request in which one message breaks a rule is refused whole (nothing sent)."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from notify.rules import sms_size
from simulators.sms.base import SimulatorBase

MSISDN = re.compile(r"(?:88)?01[3-9]\d{8}")
BATCH_MAX = 100


class SslWirelessSimulator(SimulatorBase):
    """ISMS Plus v3 over real HTTP."""

    name = "sslwireless"

    def __init__(self, api_token: str = "ssl-test-token",  # noqa: S107 - test credentials
                 sid: str = "RADBILLNM",
                 balance: int | None = None, max_parts: int = 10, tps: int | None = None,
                 rps: int | None = None, allowed_ips: set[str] | None = None,
                 balance_error: tuple[str, str] = ("4030", "Insufficient balance")) -> None:
        super().__init__()
        self.api_token, self.sid = api_token, sid
        self.balance, self.max_parts, self.tps, self.rps = balance, max_parts, tps, rps
        self.allowed_ips = allowed_ips
        self.balance_error = balance_error
        self.blocked: set[str] = set()
        self.seen: dict[tuple[str, str], str] = {}  # (day, csms_id) -> reference
        self.duplicates = 0
        self._window = (0, 0, 0)  # (second, requests, messages)

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_token": self.api_token, "sid": self.sid}

    def _fail(self, code: str, message: str) -> tuple[int, dict[str, Any]]:
        return 200, {"status": "FAILED", "status_code": code, "error_message": message,
                     "smsinfo": []}

    def _rate(self, messages: int) -> tuple[str, str] | None:
        second = int(time.monotonic())
        s, r, m = self._window
        if s != second:
            r, m = 0, 0
        r, m = r + 1, m + messages
        self._window = (second, r, m)
        if self.rps is not None and r > self.rps:
            return "4029", "Request rate limit exceeded"
        if self.tps is not None and m > self.tps:
            return "4031", "TPS limit exceeded"
        return None

    def route(self, method: str, path: str, headers: dict[str, str], body: Any,
              client: str) -> tuple[int, Any]:
        if method != "POST" or not isinstance(body, dict):
            return 405 if method != "POST" else 400, {"status": "FAILED",
                                                      "status_code": "4022",
                                                      "error_message": "Invalid request"}
        if path == "/api/v3/send-sms":
            items: list[Any] = [{"msisdn": body.get("msisdn"), "text": body.get("sms"),
                      "csms_id": body.get("csms_id")}]
        elif path == "/api/v3/send-sms/bulk":
            numbers = body.get("msisdn")
            if isinstance(numbers, str):
                numbers = [n.strip() for n in numbers.split(",") if n.strip()]
            if not isinstance(numbers, list):
                numbers = []
            batch_id = body.get("batch_csms_id")
            items = [{"msisdn": n, "text": body.get("sms"),
                      "csms_id": f"{batch_id}" if i == 0 else f"{batch_id}#{i}"}
                     for i, n in enumerate(numbers)]
        elif path == "/api/v3/send-sms/dynamic":
            sms = body.get("sms")
            items = sms if isinstance(sms, list) else []
        else:
            return 404, {"status": "FAILED", "status_code": "404", "error_message": "Not found"}
        with self.lock:
            return self._send(body, items, client)

    def _send(  # noqa: PLR0911, PLR0912 - one documented code per refusal
            self, body: dict[str, Any], items: list[Any], client: str
              ) -> tuple[int, Any]:
        if body.get("api_token") != self.api_token:
            return self._fail("4001", "Unauthorized: invalid API token")
        if body.get("sid") != self.sid:
            return self._fail("4002", "Invalid SID")
        if self.allowed_ips is not None and client not in self.allowed_ips:
            return self._fail("4003", "IP blacklisted")
        if not items or len(items) > BATCH_MAX:
            return self._fail("4022", "Missing or invalid parameter")
        limited = self._rate(len(items))
        if limited:
            return self._fail(*limited)
        day = dt.datetime.now(dt.UTC).date().isoformat()
        parts = 0
        ids: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                return self._fail("4022", "Missing or invalid parameter")
            msisdn, text, csms = item.get("msisdn"), item.get("text"), item.get("csms_id")
            if not (isinstance(msisdn, str) and isinstance(text, str) and text
                    and isinstance(csms, str) and csms):
                return self._fail("4022", "Missing parameter")
            if len(csms) > 20:
                return self._fail("4022", "csms_id longer than 20 characters")
            if (day, csms) in self.seen or csms in ids:
                self.duplicates += 1
                return self._fail("4023", "Duplicate csms_id")
            ids.add(csms)
            if not MSISDN.fullmatch(msisdn):
                return self._fail("4025", "Invalid MSISDN")
            if msisdn[-11:] in self.blocked:
                return self._fail("4026", "Blocked MSISDN")
            size = sms_size(text)
            if size.segments > self.max_parts:
                return self._fail("4027", "SMS too long")
            parts += size.segments
        if self.balance is not None and parts > self.balance:
            return self._fail(*self.balance_error)
        if self.balance is not None:
            self.balance -= parts
        info = []
        for item in items:
            msisdn = item["msisdn"]
            full = msisdn if msisdn.startswith("88") else "88" + msisdn
            accepted = self.accept(full, item["text"], item["csms_id"])
            self.seen[(day, item["csms_id"])] = accepted.reference
            info.append({"sms_status": "SUCCESS", "status_message": "Success",
                         "msisdn": full, "sms_type": "UNICODE" if accepted.encoding == "ucs2"
                         else "EN", "csms_id": item["csms_id"],
                         "reference_id": accepted.reference})
        return 200, {"status": "SUCCESS", "status_code": 200, "error_message": "",
                     "smsinfo": info}


def main() -> None:
    """``python -m simulators.sms.sslwireless``: serve until killed; prints the URL."""
    import sys

    sim = SslWirelessSimulator()
    # the provider's answer time as seen from the ISP (network and processing), in ms
    sim.delay = float(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.0
    sim.start()
    sys.stdout.write(f"{sim.url} {sim.api_token} {sim.sid}\n")
    sys.stdout.flush()
    import threading

    threading.Event().wait()


if __name__ == "__main__":
    main()
