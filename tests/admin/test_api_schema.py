"""Property tests generated from the served OpenAPI document (schemathesis): for every
operation, generated inputs never cause a server error, and every answer matches the
document (status codes, content type, response schema).

The document is fetched from the app at import time (it does not touch the database); the
requests go to the test's own app on the test database through a small WSGI proxy, because
schemathesis' fixture-based loader does not work with pytest 9 yet.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from admin import create_app
from radbill.config import Settings
from radbill.db import make_engine
from tests.factories import make_plan, make_subscriber


class CurrentApp:
    """A WSGI app that forwards to the app of the running test."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        assert self.app is not None, "no app for this test"
        return self.app(environ, start_response)  # type: ignore[no-any-return]


PROXY = CurrentApp()
PROXY.app = create_app(Settings(data_dir=Path(tempfile.gettempdir()), database_url="sqlite://",
                                secret_key=Fernet.generate_key().decode()),
                       engine=make_engine("sqlite://"))
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", PROXY)


@pytest.fixture(autouse=True)
def current_app(app: Any, factory: Any, box: Any) -> Iterator[None]:
    with factory() as s, s.begin():
        make_plan(s)
        make_plan(s, name="Home-50", rate="50M/10M", price="2000")
        make_subscriber(s, box, full_name="Alice", phone="+8801711111111")
    PROXY.app = app
    yield
    PROXY.app = None


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: Any, token_for: Any) -> None:
    # Not positive_data_acceptance: the document cannot say which plan names exist or what a
    # rate looks like, so some schema-valid bodies are rightly refused with a 422.
    # A case whose headers are negative is schemathesis leaving out the required bearer token
    # (the document declares no other header): adding the token back would turn it into a
    # valid request, answered 200, that schemathesis then reports as "negative data accepted".
    headers = {} if case.meta and case.meta.is_negative_at(ParameterLocation.HEADER) else (
        token_for("admin"))
    case.call_and_validate(headers=headers,
                           excluded_checks=[schemathesis.checks.positive_data_acceptance])
