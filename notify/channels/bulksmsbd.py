"""BulkSMSBD (Bangladesh): ``POST /api/smsapi`` (form: ``api_key, type, number, senderid,
message``). Always HTTP 200; ``response_code`` 202 is success. The provider takes no client
reference, so it cannot refuse a repeat: an unknown outcome is never re-sent (at most once,
see :mod:`notify.delivery`)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from notify.channels.base import ErrorMap, Outcome, Result, SmsMessage
from notify.channels.http import client, json_or_none, network_outcome, status_outcome

ERRORS = ErrorMap(
    account=frozenset({"1002", "1006", "1007", "1011", "1013", "1032"}),
    transient=frozenset({"1005"}))


class BulkSmsBdGateway:
    """BulkSMSBD, one message per request."""

    name = "bulksmsbd"
    idempotent = False
    max_batch = 1

    def __init__(self, base_url: str, api_key: str, sender_id: str,
                 errors: ErrorMap = ERRORS, http: httpx.AsyncClient | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.api_key, self.sender_id, self.errors = api_key, sender_id, errors
        self.http = http or client()

    async def check_credentials(self) -> str | None:
        """The provider has no read-only call radbill uses: its first message proves them."""
        return None

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, messages: Sequence[SmsMessage]) -> list[Result]:
        return [await self._one(m) for m in messages]

    async def _one(self, m: SmsMessage) -> Result:
        try:
            response = await self.http.post(self.base + "/api/smsapi", data={
                "api_key": self.api_key, "type": "text", "number": m.to,
                "senderid": self.sender_id, "message": m.text})
        except httpx.HTTPError as exc:
            return Result(m.provider_id, *network_outcome(exc))
        data = json_or_none(response)
        if not isinstance(data, dict) or "response_code" not in data:
            return Result(m.provider_id, status_outcome(response.status_code),
                          f"HTTP {response.status_code}")
        code = str(data["response_code"])
        if code == "202":
            return Result(m.provider_id, Outcome.SENT,
                          reference=str(data.get("message_id") or "") or None)
        message = str(data.get("error_message") or data.get("success_message") or "")
        return Result(m.provider_id, self.errors.classify(code, message), f"{code} {message}")
