"""SSL Wireless ISMS Plus API v3 (Bangladesh).

``POST /api/v3/send-sms`` ``{api_token, sid, msisdn, sms, csms_id}`` for one message and
``/api/v3/send-sms/dynamic`` ``{api_token, sid, sms: [{msisdn, text, csms_id}]}`` for up to
100. ``csms_id`` (at most 20 characters, unique per day) is our delivery's provider id: a
re-send after an unknown outcome answers 4023 (duplicate) when the first one went, so a
delivery is never sent twice. When a batch is refused for one message's fault, each message
is sent on its own so the others go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from notify.channels.base import ErrorMap, Outcome, Result, SmsMessage
from notify.channels.http import client, json_or_none, network_outcome, status_outcome

# Codes as data: sources disagree (FIELD-NOTES), an operator can override them.
ERRORS = ErrorMap(account=frozenset({"4001", "4002", "4003"}),
                  transient=frozenset({"4029", "4031"}),
                  already_sent=frozenset({"4023"}))
# A batch refused with one of these names one message's fault: send them one by one.
MESSAGE_CODES = frozenset({"4022", "4023", "4025", "4026", "4027"})
BATCH = 100


class SslWirelessGateway:
    """SSL Wireless ISMS Plus v3."""

    name = "sslwireless"
    idempotent = True
    max_batch = BATCH

    def __init__(self, base_url: str, api_token: str, sid: str,
                 errors: ErrorMap = ERRORS, http: httpx.AsyncClient | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.api_token, self.sid, self.errors = api_token, sid, errors
        self.http = http or client()

    async def check_credentials(self) -> str | None:
        """The provider has no read-only call radbill uses: its first message proves them."""
        return None

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, messages: Sequence[SmsMessage]) -> list[Result]:
        if not messages:
            return []
        if len(messages) == 1:
            return [await self._one(messages[0])]
        body = {"api_token": self.api_token, "sid": self.sid,
                "sms": [{"msisdn": m.to, "text": m.text, "csms_id": m.provider_id}
                        for m in messages]}
        reply = await self._post("/api/v3/send-sms/dynamic", body)
        if isinstance(reply, tuple):
            return [Result(m.provider_id, reply[0], reply[1]) for m in messages]
        if reply.get("status") == "SUCCESS":
            return self._per_message(messages, reply)
        code = str(reply.get("status_code", ""))
        if code in MESSAGE_CODES:
            # one message spoilt the batch: isolate it
            return list(await asyncio.gather(*(self._one(m) for m in messages)))
        outcome = self.errors.classify(code, str(reply.get("error_message", "")))
        return [Result(m.provider_id, outcome, f"{code} {reply.get('error_message', '')}")
                for m in messages]

    async def _one(self, m: SmsMessage) -> Result:
        reply = await self._post("/api/v3/send-sms", {
            "api_token": self.api_token, "sid": self.sid, "msisdn": m.to, "sms": m.text,
            "csms_id": m.provider_id})
        if isinstance(reply, tuple):
            return Result(m.provider_id, reply[0], reply[1])
        if reply.get("status") == "SUCCESS":
            return self._per_message([m], reply)[0]
        code = str(reply.get("status_code", ""))
        message = str(reply.get("error_message", ""))
        outcome = self.errors.classify(code, message)
        detail = "already sent (duplicate csms_id)" if code in self.errors.already_sent \
            else f"{code} {message}"
        return Result(m.provider_id, outcome, detail)

    def _per_message(self, messages: Sequence[SmsMessage], reply: Mapping[str, Any]
                     ) -> list[Result]:
        info = {str(i.get("csms_id")): i for i in reply.get("smsinfo") or []
                if isinstance(i, dict)}
        out = []
        for m in messages:
            i = info.get(m.provider_id)
            if i is None:
                out.append(Result(m.provider_id, Outcome.UNKNOWN, "not in the provider's reply"))
            elif str(i.get("sms_status", "")).upper() == "SUCCESS":
                out.append(Result(m.provider_id, Outcome.SENT,
                                  reference=str(i.get("reference_id") or "") or None))
            else:
                out.append(Result(m.provider_id, Outcome.PERMANENT,
                                  f"refused: {i.get('sms_status')}"))
        return out

    async def _post(self, path: str, body: dict[str, Any]
                    ) -> dict[str, Any] | tuple[Outcome, str]:
        try:
            response = await self.http.post(self.base + path, json=body,
                                            headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            return network_outcome(exc)
        data = json_or_none(response)
        if not isinstance(data, dict):
            return status_outcome(response.status_code), f"HTTP {response.status_code}"
        return data
