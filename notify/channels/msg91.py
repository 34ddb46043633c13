"""MSG91 flow API (India): ``POST /api/v5/flow`` with header ``authkey`` and
``{template_id, recipients: [{mobiles, VAR...}]}``; reply ``{"type": "success", "message":
"<request id>"}`` or ``{"type": "error", "message": ...}``. Every message names its DLT
template (TRAI); MSG91 renders the registered text from the variables. Delivery reports
arrive by webhook. No client reference: an unknown outcome is not re-sent."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from notify.channels.base import ErrorMap, Outcome, Result, SmsMessage
from notify.channels.http import client, json_or_none, network_outcome, status_outcome

ERRORS = ErrorMap(account_pattern=r"auth|balance|credit|sender|ip|whitelist|blocked")


class Msg91Gateway:
    """MSG91, one recipient per request."""

    name = "msg91"
    idempotent = False
    max_batch = 1

    def __init__(self, base_url: str, authkey: str, errors: ErrorMap = ERRORS,
                 http: httpx.AsyncClient | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.authkey, self.errors = authkey, errors
        self.http = http or client()

    async def check_credentials(self) -> str | None:
        """The provider has no read-only call radbill uses: its first message proves them."""
        return None

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, messages: Sequence[SmsMessage]) -> list[Result]:
        return [await self._one(m) for m in messages]

    async def _one(self, m: SmsMessage) -> Result:  # noqa: PLR0911 - one answer per reply
        if not m.dlt_template_id:
            return Result(m.provider_id, Outcome.PERMANENT,
                          "no DLT template id for this message (India: required)")
        recipient = {"mobiles": m.to, **dict(m.variables)}
        try:
            response = await self.http.post(
                self.base + "/api/v5/flow", json={"template_id": m.dlt_template_id,
                                                  "recipients": [recipient]},
                headers={"authkey": self.authkey, "accept": "application/json"})
        except httpx.HTTPError as exc:
            return Result(m.provider_id, *network_outcome(exc))
        data = json_or_none(response)
        if not isinstance(data, dict) or "type" not in data:
            return Result(m.provider_id, status_outcome(response.status_code),
                          f"HTTP {response.status_code}")
        if data["type"] == "success":
            return Result(m.provider_id, Outcome.SENT, reference=str(data.get("message")))
        message = str(data.get("message", ""))
        if response.status_code == 429:
            return Result(m.provider_id, Outcome.TRANSIENT, message)
        if response.status_code == 401:
            return Result(m.provider_id, Outcome.ACCOUNT, message)
        return Result(m.provider_id, self.errors.classify(str(data.get("code", "")), message),
                      message)
