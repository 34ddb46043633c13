"""MSG91 flow API (India), simulated from its documentation (FIELD-NOTES; msg91.com help):
``POST /api/v5/flow`` with header ``authkey`` and ``{template_id, recipients: [{mobiles,
VAR...}]}``. A template is registered with its text (``##VAR##`` placeholders, as the DLT
template was approved); each variable at most 30 characters (TRAI DLT); ``mobiles`` is
``91XXXXXXXXXX``. Reply ``{"type": "success", "message": "<request id>"}`` or
``{"type": "error", "message": ...}``. Delivery reports go to a webhook, when one is set, in
the panel's "v2" format: form-encoded ``data``, a JSON array of ``{senderId, requestId,
report: [{date, number, status, desc, failedReason, ...}], userId, campaignName}``."""

from __future__ import annotations

import json
import re
import secrets
import threading
import urllib.parse
import urllib.request
from typing import Any

from simulators.sms.base import SimulatorBase

MOBILE = re.compile(r"91[6-9]\d{9}")
VARIABLE_MAX = 30


class Msg91Simulator(SimulatorBase):
    """MSG91 over real HTTP."""

    name = "msg91"

    def __init__(self, authkey: str = "msg91-test-key", balance: int | None = None,
                 webhook: str | None = None) -> None:
        super().__init__()
        self.authkey, self.balance, self.webhook = authkey, balance, webhook
        self.templates: dict[str, str] = {}
        self.reports: list[dict[str, Any]] = []
        self.undeliverable: set[str] = set()  # numbers whose report says FAILED

    @property
    def credentials(self) -> dict[str, str]:
        return {"authkey": self.authkey}

    def register(self, template_id: str, text: str) -> None:
        """A DLT-approved template: ``"Dear ##name##, pay ##amount##"``."""
        self.templates[template_id] = text

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {"type": "error", "message": message}

    def route(  # noqa: PLR0911, PLR0912 - one answer per refusal
            self, method: str, path: str, headers: dict[str, str], body: Any,
              client: str) -> tuple[int, Any]:
        if path != "/api/v5/flow" or method != "POST":
            return self._error(404, "Not found")
        if headers.get("authkey") != self.authkey:
            return self._error(401, "Authentication failure")
        if not isinstance(body, dict) or not isinstance(body.get("recipients"), list) \
                or not body["recipients"]:
            return self._error(400, "recipients missing")
        template = self.templates.get(str(body.get("template_id")))
        if template is None:
            return self._error(400, "Invalid template id")
        texts = []
        for r in body["recipients"]:
            if not isinstance(r, dict) or not MOBILE.fullmatch(str(r.get("mobiles", ""))):
                return self._error(400, "Invalid mobile number")
            names = re.findall(r"##(\w+)##", template)
            values = {n: str(r.get(n, "")) for n in names}
            if any(n not in r for n in names):
                return self._error(400, "Template variables missing")
            if any(len(v) > VARIABLE_MAX for v in values.values()):
                return self._error(400, "Variable value longer than 30 characters")
            text = template
            for n, v in values.items():
                text = text.replace(f"##{n}##", v)
            texts.append((str(r["mobiles"]), text))
        with self.lock:
            if self.balance is not None and len(texts) > self.balance:
                return self._error(400, "Insufficient balance")
            if self.balance is not None:
                self.balance -= len(texts)
            request_id = secrets.token_hex(12)
            for mobile, text in texts:
                self.accept(mobile, text, request_id)
        if self.webhook:
            report = [{"senderId": "RADBIL", "requestId": request_id, "report": [
                {"date": "2026-12-01 10:00:00", "amount": "0.01", "clientid": "",
                 "number": m, "credit": "1",
                 "status": "2" if m in self.undeliverable else "1",
                 "desc": "FAILED" if m in self.undeliverable else "DELIVERED",
                 "failedReason": "Absent subscriber" if m in self.undeliverable else ""}
                for m, _ in texts], "userId": "1", "campaignName": "API"}]
            threading.Thread(target=self._report, args=(report,), daemon=True).start()
        return 200, {"type": "success", "message": request_id}

    def _report(self, report: list[dict[str, Any]]) -> None:
        assert self.webhook is not None
        data = urllib.parse.urlencode({"data": json.dumps(report)}).encode()
        if not self.webhook.startswith(("http://", "https://")):
            return
        req = urllib.request.Request(self.webhook, data=data, method="POST",  # noqa: S310
                                     headers={"Content-Type":
                                              "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=5):  # noqa: S310 - the test's http URL
                pass
        except OSError:
            pass
        self.reports.extend(report)
