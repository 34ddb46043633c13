"""Message templates per event kind, channel and locale: the shipped ones (English and
Bengali; a Hindi welcome) and the operator's overrides (:class:`notify.models.Template`).

Templates are Jinja2 in a sandbox with ``StrictUndefined``: an operator's template can read
only the variables below and fails to render (so cannot be saved) when it names another.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import escape

from notify.rules import format_amount

VARIABLES = ("name", "username", "plan", "amount", "currency", "due_date", "period", "link",
             "isp_name", "isp_phone", "invoice", "reason", "code")
LOCALES = ("en", "bn", "hi")
DLT_VARIABLE_MAX = 30  # TRAI: each variable of a DLT template at most 30 characters
BODY_MAX = 4000

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                            keep_trailing_newline=False)


class TemplateProblem(ValueError):
    """A template that does not render, or renders something that cannot be sent."""


# (kind, channel, locale) -> (subject, body). SMS texts are short; every part is billed.
SHIPPED: dict[tuple[str, str, str], tuple[str | None, str]] = {
    ("invoice_issued", "sms", "en"): (None, "{{ isp_name }}: invoice {{ invoice }} for "
                                     "{{ amount }} due {{ due_date }}. Pay: {{ link }}"),
    ("invoice_issued", "sms", "bn"): (None, "{{ isp_name }}: বিল {{ invoice }}, {{ amount }}, "
                                     "শেষ তারিখ {{ due_date }}। পরিশোধ: {{ link }}"),
    ("invoice_issued", "email", "en"): (
        "Invoice {{ invoice }} from {{ isp_name }}",
        "Dear {{ name }},\n\nYour invoice {{ invoice }} for {{ amount }} is attached. "
        "Please pay by {{ due_date }}: {{ link }}\n\n{{ isp_name }} {{ isp_phone }}"),
    ("invoice_issued", "email", "bn"): (
        "{{ isp_name }} বিল {{ invoice }}",
        "প্রিয় {{ name }},\n\nআপনার বিল {{ invoice }} ({{ amount }}) সংযুক্ত। "
        "{{ due_date }} এর মধ্যে পরিশোধ করুন: {{ link }}\n\n{{ isp_name }} {{ isp_phone }}"),
    ("reminder", "sms", "en"): (None, "{{ isp_name }}: {{ amount }} due on {{ due_date }} "
                               "for {{ username }}. Pay: {{ link }}"),
    ("reminder", "sms", "bn"): (None, "{{ isp_name }}: {{ username }} এর {{ amount }} "
                               "{{ due_date }} এর মধ্যে পরিশোধ করুন: {{ link }}"),
    ("due_notice", "sms", "en"): (None, "{{ isp_name }}: {{ amount }} is due today for "
                                 "{{ username }}. Pay: {{ link }}"),
    ("due_notice", "sms", "bn"): (None, "{{ isp_name }}: আজ {{ username }} এর {{ amount }} "
                                 "পরিশোধের শেষ দিন: {{ link }}"),
    ("final_reminder", "sms", "en"): (None, "{{ isp_name }}: last reminder, {{ amount }} "
                                     "unpaid. Service stops soon. Pay: {{ link }}"),
    ("final_reminder", "sms", "bn"): (None, "{{ isp_name }}: শেষ অনুরোধ, {{ amount }} বকেয়া। "
                                     "সংযোগ বন্ধ হবে। পরিশোধ: {{ link }}"),
    ("suspended", "sms", "en"): (None, "{{ isp_name }}: {{ username }} is suspended for "
                                "non-payment. Call {{ isp_phone }}."),
    ("suspended", "sms", "bn"): (None, "{{ isp_name }}: বকেয়ার জন্য {{ username }} সংযোগ "
                                "বন্ধ। ফোন {{ isp_phone }}"),
    ("still_suspended", "sms", "en"): (None, "{{ isp_name }}: {{ username }} is still "
                                      "suspended; {{ amount }} due. Call {{ isp_phone }}."),
    ("still_suspended", "sms", "bn"): (None, "{{ isp_name }}: {{ username }} সংযোগ এখনও বন্ধ, "
                                      "বকেয়া {{ amount }}। ফোন {{ isp_phone }}"),
    ("reconnected", "sms", "en"): (None, "{{ isp_name }}: {{ username }} is connected again."),
    ("reconnected", "sms", "bn"): (None, "{{ isp_name }}: {{ username }} সংযোগ আবার চালু।"),
    ("payment_received", "sms", "en"): (None, "{{ isp_name }}: payment of {{ amount }} "
                                       "received for {{ username }}. Thank you."),
    ("payment_received", "sms", "bn"): (None, "{{ isp_name }}: {{ username }} এর {{ amount }} "
                                       "পেয়েছি। ধন্যবাদ।"),
    ("payment_received", "email", "en"): (
        "Payment received: {{ amount }}",
        "Dear {{ name }},\n\nWe received your payment of {{ amount }} for {{ username }}. "
        "Thank you.\n\n{{ isp_name }} {{ isp_phone }}"),
    ("welcome", "sms", "en"): (None, "Welcome to {{ isp_name }}, {{ name }}! Your login is "
                              "{{ username }}. Help: {{ isp_phone }}"),
    ("welcome", "sms", "bn"): (None, "{{ isp_name }} এ স্বাগতম, {{ name }}! লগইন "
                              "{{ username }}। সাহায্য: {{ isp_phone }}"),
    ("welcome", "sms", "hi"): (None, "{{ isp_name }} में आपका स्वागत है, {{ name }}! आपका लॉगिन "
                              "{{ username }} है। सहायता: {{ isp_phone }}"),
    # usage part: a data cap 80% used, and reached (then the fair-usage speed applies)
    ("usage_80", "sms", "en"): (None, "{{ isp_name }}: {{ username }} has used 80% of the "
                               "data for {{ period }}. Top-ups: {{ isp_phone }}"),
    ("usage_100", "sms", "en"): (None, "{{ isp_name }}: {{ username }} has used all the data "
                                "for {{ period }}; speed is reduced until it renews. "
                                "Top-ups: {{ isp_phone }}"),
    ("otp", "sms", "en"): (None, "{{ isp_name }}: your login code is {{ code }}. It expires "
                          "in 5 minutes. Do not share it."),
    ("otp", "sms", "bn"): (None, "{{ isp_name }}: আপনার লগইন কোড {{ code }}। ৫ মিনিটে মেয়াদ "
                          "শেষ। কাউকে বলবেন না।"),
    ("test", "sms", "en"): (None, "{{ isp_name }}: test message from radbill."),
    ("test", "email", "en"): ("radbill test", "{{ isp_name }}: test message from radbill."),
}


@dataclass(frozen=True)
class Source:
    """A template's text (shipped or the operator's)."""

    subject: str | None
    body: str
    dlt_template_id: str | None = None


@dataclass(frozen=True)
class Rendered:
    """A rendered message."""

    subject: str | None
    text: str
    html: str | None


def shipped(kind: str, channel: str, locale: str) -> Source | None:
    """The shipped template, falling back to English."""
    found = SHIPPED.get((kind, channel, locale)) or SHIPPED.get((kind, channel, "en"))
    return Source(*found) if found else None


# Events whose amount is what happened (a payment, a fee), not what is owed now.
AMOUNT_IS_THE_EVENT = frozenset({"payment_received", "late_fee", "credit_note"})


def context(payload: dict[str, Any], *, isp_name: str, isp_phone: str, link: str,
            plan: str = "", kind: str = "") -> dict[str, str]:
    """The variables a template sees, every one of them (empty when the event has none)."""
    currency = str(payload.get("currency") or "")
    order = (("amount", "total", "amount_due") if kind in AMOUNT_IS_THE_EVENT
             else ("amount_due", "amount", "total"))
    raw = next((payload[k] for k in order if payload.get(k) is not None), None)
    amount = ""
    if raw is not None:
        try:
            amount = format_amount(Decimal(str(raw)), currency or "BDT")
        except InvalidOperation:
            amount = str(raw)
    due = payload.get("due_on") or ""
    period = (f"{payload['period_start']} - {payload['period_end']}"
              if payload.get("period_start") and payload.get("period_end") else "")
    return {"name": str(payload.get("name") or payload.get("username") or ""),
            "username": str(payload.get("username") or ""), "plan": plan or
            str(payload.get("plan") or ""), "amount": amount, "currency": currency,
            "due_date": _day(str(due)), "period": period, "link": link,
            "isp_name": isp_name, "isp_phone": isp_phone,
            "invoice": str(payload.get("invoice") or payload.get("number") or ""),
            "reason": str(payload.get("reason") or ""),
            "code": str(payload.get("code") or "")}


def _day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).strftime("%d-%m-%Y")
    except ValueError:
        return text


@functools.lru_cache(maxsize=512)
def _compiled(text: str) -> tuple[Template, frozenset[str]]:
    """A template compiled once (compiling is most of rendering's cost) and its variables."""
    return _ENV.from_string(text), frozenset(meta.find_undeclared_variables(_ENV.parse(text)))


def used(source: Source) -> list[str]:
    """The variables a template uses."""
    return sorted(_compiled(source.body)[1] & set(VARIABLES))


def render(source: Source, variables: dict[str, str], *, html: bool = False) -> Rendered:
    """Render *source*; :class:`TemplateProblem` if it does not render, renders empty or
    too long, or (DLT) a variable it uses exceeds 30 characters."""
    try:
        body, names = _compiled(source.body)
        subject = (_compiled(source.subject)[0].render(variables).strip()
                   if source.subject else None)
        text = body.render(variables).strip()
    except TemplateError as exc:
        raise TemplateProblem(f"template does not render: {exc}") from exc
    unknown = names - set(VARIABLES)
    if unknown:
        raise TemplateProblem(f"unknown variables: {', '.join(sorted(unknown))}")
    if source.dlt_template_id:
        long = sorted(n for n in names if len(variables.get(n, "")) > DLT_VARIABLE_MAX)
        if long:
            raise TemplateProblem(f"DLT: variables longer than {DLT_VARIABLE_MAX} characters: "
                                  f"{', '.join(long)}")
    if not text or len(text) > BODY_MAX:
        raise TemplateProblem(f"rendered text is empty or longer than {BODY_MAX} characters")
    page = None
    if html:
        escaped = {k: str(escape(v)) for k, v in variables.items()}
        inner = body.render(escaped).strip()
        paragraphs = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>"
                             for p in inner.split("\n\n"))
        page = f"<!DOCTYPE html><html><body>{paragraphs}</body></html>"
    return Rendered(subject, text, page)
