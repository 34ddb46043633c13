"""BulkSMSBD, simulated from its documentation (FIELD-NOTES): ``GET/POST /api/smsapi``
``api_key, type, number, senderid, message`` (``number`` may list several, comma separated)
and ``/api/smsapimany`` with ``messages=[{to, message}]``. Always HTTP 200 with a
``response_code``: 202 accepted; 1001 invalid number, 1002 sender id, 1003 missing fields,
1007 insufficient balance, 1011 unknown user (API key), 1012 masking SMS must be Bengali,
1032 IP not whitelisted. No client reference: a repeated request is sent again."""

from __future__ import annotations

import json
import re
from typing import Any

from notify.rules import sms_size
from simulators.sms.base import SimulatorBase

NUMBER = re.compile(r"(?:88)?01[3-9]\d{8}")
BENGALI = re.compile(r"[\u0980-\u09FF]")


class BulkSmsBdSimulator(SimulatorBase):
    """BulkSMSBD over real HTTP."""

    name = "bulksmsbd"

    def __init__(self, api_key: str = "bulk-test-key", sender_id: str = "8809600000000",
                 balance: int | None = None, masking: bool = False,
                 allowed_ips: set[str] | None = None) -> None:
        super().__init__()
        self.api_key, self.sender_id, self.balance = api_key, sender_id, balance
        self.masking, self.allowed_ips = masking, allowed_ips

    @property
    def credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key, "sender_id": self.sender_id}

    @staticmethod
    def _answer(code: int, message: str = "") -> tuple[int, dict[str, Any]]:
        if code == 202:
            return 200, {"response_code": 202, "message_id": message,
                         "success_message": "SMS Submitted Successfully", "error_message": ""}
        return 200, {"response_code": code, "success_message": "", "error_message": message}

    def route(self, method: str, path: str, headers: dict[str, str], body: Any,
              client: str) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return self._answer(1003, "Please Required all fields")
        if path == "/api/smsapi":
            numbers = [n.strip() for n in str(body.get("number", "")).split(",") if n.strip()]
            pairs = [(n, str(body.get("message", ""))) for n in numbers]
        elif path == "/api/smsapimany":
            try:
                raw = json.loads(str(body.get("messages", "")))
            except ValueError:
                raw = None
            if not isinstance(raw, list):
                return self._answer(1003, "Please Required all fields")
            pairs = [(str(m.get("to", "")), str(m.get("message", ""))) for m in raw
                     if isinstance(m, dict)]
        else:
            return 404, {"response_code": 404, "error_message": "Not found"}
        with self.lock:
            return self._send(body, pairs, client)

    def _send(  # noqa: PLR0911 - one code per refusal, as the provider answers
            self, body: dict[str, Any], pairs: list[tuple[str, str]], client: str
              ) -> tuple[int, Any]:
        if not body.get("api_key") or not body.get("senderid") or not pairs \
                or any(not t for _, t in pairs):
            return self._answer(1003, "Please Required all fields")
        if body["api_key"] != self.api_key:
            return self._answer(1011, "User Id not found")
        if self.allowed_ips is not None and client not in self.allowed_ips:
            return self._answer(1032, "IP Not whitelisted")
        if body["senderid"] != self.sender_id:
            return self._answer(1002, "Sender Id not correct or disabled")
        parts = 0
        for number, text in pairs:
            if not NUMBER.fullmatch(number):
                return self._answer(1001, "Invalid Number")
            if self.masking and not BENGALI.search(text):
                return self._answer(1012, "Masking SMS must be sent in Bengali")
            parts += sms_size(text).segments
        if self.balance is not None and parts > self.balance:
            return self._answer(1007, "Balance Insufficient")
        if self.balance is not None:
            self.balance -= parts
        refs = [self.accept(n if n.startswith("88") else "88" + n, t, None).reference
                for n, t in pairs]
        return self._answer(202, ",".join(refs))
