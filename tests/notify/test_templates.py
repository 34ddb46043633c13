"""Templates: every shipped one renders in every locale; StrictUndefined and the sandbox;
TRAI DLT's 30 characters per variable; amounts for the locale."""

from __future__ import annotations

import pytest

from notify import templates
from notify.templates import Source, TemplateProblem, context, render

VARS = context({"name": "Rahim Uddin", "username": "rahim", "amount_due": "120000.5",
                "currency": "BDT", "due_on": "2026-12-08", "invoice": "INV-000042",
                "payment_link": "https://isp.example/pay/x"},
               isp_name="Dhaka Net", isp_phone="09610000000", link="https://isp.example/p/Ab")


@pytest.mark.parametrize("key", sorted(templates.SHIPPED))
def test_every_shipped_template_renders(key: tuple[str, str, str]) -> None:
    out = render(Source(*templates.SHIPPED[key]), VARS)
    assert out.text and "{{" not in out.text
    assert (out.subject is not None) is (key[1] == "email")


def test_bengali_reminder_with_lakh_grouping() -> None:
    out = render(Source(*templates.SHIPPED[("reminder", "sms", "bn")]), VARS)
    assert out.text == ("Dhaka Net: rahim এর ৳1,20,000.50 08-12-2026 এর মধ্যে পরিশোধ করুন: "
                        "https://isp.example/p/Ab")


@pytest.mark.parametrize(("body", "problem"), [
    ("Hello {{ nmae }}", "does not render"),  # StrictUndefined
    ("{{ name.__class__.__mro__ }}", "does not render"),  # the sandbox
    ("{{ ''.__class__ }}", "does not render"),
    ("{% for x in %}", "does not render"),
    ("{{ '' }}", "empty"),
    ("{{ name }}" * 500, "longer than"),
])
def test_templates_that_cannot_be_sent(body: str, problem: str) -> None:
    with pytest.raises(TemplateProblem, match=problem):
        render(Source(None, body), VARS)


def test_dlt_variables_at_most_30_characters() -> None:
    long = {**VARS, "name": "Mohammad Abdur Rahman Chowdhury Khan"}
    dlt = Source(None, "Dear {{ name }}, pay {{ amount }}", dlt_template_id="1207160000000000001")
    with pytest.raises(TemplateProblem, match="DLT: variables longer than 30 characters: name"):
        render(dlt, long)
    assert render(dlt, VARS).text == "Dear Rahim Uddin, pay ৳1,20,000.50"
    # without a DLT template (Bangladesh) a long name is fine
    assert render(Source(None, "Dear {{ name }}"), long).text.endswith("Khan")
