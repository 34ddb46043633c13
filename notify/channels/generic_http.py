"""A generic HTTP SMS gateway configured by data, so any aggregator works without code
(phpnuxbill's ``sms_url``, Splynx's URL/payload/success match): method, URL, headers, a form
or JSON body template that sees ``{to}`` and ``{text}``, a success test (a regex over the
reply, or a JSON path and value), and the provider's error codes mapped to permanent /
transient / account."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from notify.channels.base import ErrorMap, Outcome, Result, SmsMessage
from notify.channels.http import client, json_or_none, network_outcome, status_outcome


class GenericConfigError(ValueError):
    """A generic gateway profile that cannot work."""


@dataclass(frozen=True)
class GenericProfile:
    """A provider as data."""

    url: str
    method: str = "POST"
    content_type: str = "form"  # form | json
    body: str = "to={to}&text={text}"
    headers: Mapping[str, str] = field(default_factory=dict)
    success_regex: str | None = None
    success_json_path: str | None = None  # "status" or "data.0.status"
    success_value: str | None = None
    error_json_path: str | None = None
    errors: Mapping[str, str] = field(default_factory=dict)  # code -> permanent|transient|account
    idempotent: bool = False

    def __post_init__(self) -> None:
        if not re.match(r"https?://", self.url):
            raise GenericConfigError(f"url {self.url!r} is not http(s)")
        if self.method.upper() not in ("GET", "POST"):
            raise GenericConfigError("method must be GET or POST")
        if self.content_type not in ("form", "json"):
            raise GenericConfigError("content type must be form or json")
        if "{to}" not in self.body and "{to}" not in self.url:
            raise GenericConfigError("the body (or URL) template must contain {to}")
        if "{text}" not in self.body and "{text}" not in self.url:
            raise GenericConfigError("the body (or URL) template must contain {text}")
        if not (self.success_regex or self.success_json_path):
            raise GenericConfigError("a success test is needed (a regex or a JSON path)")
        if self.success_regex:
            try:
                re.compile(self.success_regex)
            except re.error as exc:
                raise GenericConfigError(f"success regex: {exc}") from exc
        bad = set(self.errors.values()) - {"permanent", "transient", "account"}
        if bad:
            raise GenericConfigError(f"error classes must be permanent|transient|account: {bad}")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> GenericProfile:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in settings.items() if k in known})


def json_path(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def _fill(template: str, m: SmsMessage, quote: Any) -> str:
    return template.replace("{to}", quote(m.to)).replace("{text}", quote(m.text))


class GenericHttpGateway:
    """Any HTTP SMS API, from a :class:`GenericProfile`."""

    name = "generic-http"
    max_batch = 1

    def __init__(self, profile: GenericProfile, http: httpx.AsyncClient | None = None) -> None:
        self.profile = profile
        self.idempotent = profile.idempotent
        codes = profile.errors
        self.errors = ErrorMap(
            account=frozenset(k for k, v in codes.items() if v == "account"),
            transient=frozenset(k for k, v in codes.items() if v == "transient"))
        self.http = http or client()

    async def check_credentials(self) -> str | None:
        """The provider has no read-only call radbill uses: its first message proves them."""
        return None

    async def close(self) -> None:
        await self.http.aclose()

    async def send(self, messages: Sequence[SmsMessage]) -> list[Result]:
        return [await self._one(m) for m in messages]

    def request(self, m: SmsMessage) -> httpx.Request:
        """The request for *m* (what the provider receives)."""
        p = self.profile
        url = _fill(p.url, m, lambda s: urllib.parse.quote(s, safe=""))
        headers = dict(p.headers)
        if p.method.upper() == "GET":
            query = _fill(p.body, m, lambda s: urllib.parse.quote(s, safe=""))
            sep = "&" if "?" in url else "?"
            return self.http.build_request("GET", url + sep + query, headers=headers)
        if p.content_type == "json":
            body = _fill(p.body, m, lambda s: json.dumps(s)[1:-1])
            headers.setdefault("Content-Type", "application/json")
        else:
            body = _fill(p.body, m, lambda s: urllib.parse.quote(s, safe=""))
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return self.http.build_request("POST", url, content=body.encode(), headers=headers)

    async def _one(self, m: SmsMessage) -> Result:
        p = self.profile
        try:
            response = await self.http.send(self.request(m))
        except httpx.HTTPError as exc:
            return Result(m.provider_id, *network_outcome(exc))
        text = response.text[:4000]
        data = json_or_none(response)
        ok = False
        if p.success_regex:
            ok = re.search(p.success_regex, text) is not None
        elif p.success_json_path:
            ok = str(json_path(data, p.success_json_path)) == str(p.success_value)
        if ok and response.status_code < 400:
            return Result(m.provider_id, Outcome.SENT)
        code = str(json_path(data, p.error_json_path)) if p.error_json_path and data else ""
        if not code and response.status_code >= 400:
            return Result(m.provider_id, status_outcome(response.status_code),
                          f"HTTP {response.status_code}: {text[:200]}")
        return Result(m.provider_id, self.errors.classify(code, text),
                      f"{code} {text[:200]}".strip())
