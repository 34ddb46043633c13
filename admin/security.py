"""What every response of the web app gets, and what every public endpoint is held to.

* **Headers** (flask-talisman): a Content-Security-Policy without inline script or style and
  with ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``, ``nosniff``, a
  ``Referrer-Policy`` that keeps payment-link keys inside the site, HSTS over HTTPS; and
  ``Cache-Control: no-store`` on every page (staff pages, payment pages, API answers): only the
  static CSS may be cached.
* **The session cookie** is Secure exactly when the request came over HTTPS (directly, or
  through a proxy the operator declared with ``RADBILL_TRUSTED_PROXIES``), so a plain-HTTP LAN
  deployment can still log in while an HTTPS one never sends the cookie in clear.
* **Rate limits** (Flask-Limiter) per client address on the login form, the payment pages,
  checkout starts and gateway returns. The store is ``RADBILL_RATELIMIT_STORAGE``: the
  default ``memory://`` counts per process, which is exact for ``radbill serve`` (one process,
  several threads); under several gunicorn workers point it at Redis
  (``redis://127.0.0.1:6379``) so the workers share one count. These limits are a flood guard:
  the security-relevant login back-off lives in the database (:mod:`admin.throttle`) and holds
  across processes without Redis. If the store fails, limits fall back to memory rather than
  failing requests.
"""

from __future__ import annotations

import string
from typing import Any, cast
from urllib.parse import quote, urlsplit

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter import Limiter
from flask_talisman import Talisman
from itsdangerous import URLSafeTimedSerializer
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Rule

from admin.throttle import address_key
from radbill.config import ConfigError, Settings

CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    # (no form-action: the payment form's answer redirects to the gateway's own site, and
    # browsers apply form-action to that redirect too)
}

# Per client address. Subscribers behind one carrier-grade NAT share an address, hence the
# generous payment-page figures; staff logins are few.
LOGIN = "20 per minute; 200 per hour"
PAY_PAGE = "60 per minute"
PAY_START = "10 per minute; 60 per hour"
PAY_RETURN = "30 per minute"
# The portal's login (a flood guard: the back-off per account and address is in the
# database), one-time code requests (each one is an SMS we pay for), and the walled-garden
# page, which a suspended subscriber's every web request is redirected to and which polls.
PORTAL_LOGIN = "20 per minute; 200 per hour"
PORTAL_OTP = "5 per minute; 30 per hour"
PORTAL_GARDEN = "120 per minute"


def limit_for(rule: Rule) -> tuple[str, list[str] | None] | None:  # noqa: PLR0911 - a table
    """The rate limit of a route (and the methods it counts), or None."""
    path = rule.rule
    if rule.endpoint == "auth.login":
        return LOGIN, ["POST"]
    if rule.endpoint in ("portal.login", "portal.otp_verify", "portal.otp_choose"):
        return PORTAL_LOGIN, ["POST"]
    if rule.endpoint == "portal.otp_send":
        return PORTAL_OTP, ["POST"]
    if rule.endpoint in ("portal.garden", "portal.garden_status"):
        return PORTAL_GARDEN, None
    if rule.endpoint in ("portal.garden_pay", "portal.pay"):
        return PAY_START, None
    if path.startswith("/pay/return/"):
        return PAY_RETURN, None
    if path.startswith("/pay/") and path.endswith("/start"):
        return PAY_START, None
    if path.startswith("/pay/"):
        return PAY_PAGE, None
    return None


def client_address() -> str:
    """Who a request counts against: its address (after a trusted proxy's X-Forwarded-For),
    IPv6 by /64."""
    return address_key(request.remote_addr)


PORTAL_PREFIX = "/portal"
PORTAL_COOKIE = "radbill_portal"


def is_portal(path: str) -> bool:
    """Whether *path* is the subscribers' side (its own session cookie and CSRF token)."""
    return path == PORTAL_PREFIX or path.startswith(PORTAL_PREFIX + "/")


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, Secure only on HTTPS requests.

    The subscribers' portal (``/portal/...``) gets a session of its own: another cookie
    name, scoped to ``/portal``, signed under another salt. A staff cookie is never sent to
    (or accepted by) the portal and a subscriber's never by the staff pages, and each side has
    its own CSRF token (kept in its session)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request.is_secure)

    def get_cookie_name(self, app: Flask) -> str:
        if is_portal(request.path):
            return PORTAL_COOKIE
        return super().get_cookie_name(app)

    def get_cookie_path(self, app: Flask) -> str:
        if is_portal(request.path):
            return PORTAL_PREFIX
        return super().get_cookie_path(app)

    def get_signing_serializer(self, app: Flask) -> Any:
        if is_portal(request.path) and app.secret_key:
            # (built here rather than by switching self.salt: requests run in threads)
            return URLSafeTimedSerializer(
                [*(app.config.get("SECRET_KEY_FALLBACKS") or []), app.secret_key],
                salt="radbill-portal-session", serializer=self.serializer,
                signer_kwargs={"key_derivation": self.key_derivation,
                               "digest_method": self.digest_method})
        return super().get_signing_serializer(app)


def _no_store(response: Response) -> Response:
    if request.endpoint not in ("static", "portal.static"):
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, settings: Settings) -> None:
    """Install the proxy fix, the cookie policy, the headers and the rate limits on *app*
    (call after every blueprint is registered)."""
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n,  # type: ignore[method-assign]
                                x_host=n, x_port=n)
    app.session_interface = SessionInterface()
    Talisman(app, force_https=False, session_cookie_secure=False,
             content_security_policy=CSP, frame_options="DENY",
             referrer_policy="same-origin", strict_transport_security=True)
    app.after_request(_no_store)
    try:
        storage_from_string(settings.ratelimit_storage)
    except (ConfigurationError, ValueError) as exc:
        raise ConfigError(f"RADBILL_RATELIMIT_STORAGE={settings.ratelimit_storage!r}: {exc}"
                          ) from None
    limiter = Limiter(client_address, app=app, storage_uri=settings.ratelimit_storage,
                      # (no X-RateLimit headers: they would overwrite the login back-off's
                      # own Retry-After; a 429 of a limit gets one in admin._http_error)
                      headers_enabled=False, swallow_errors=True,
                      in_memory_fallback_enabled=True,
                      key_prefix="radbill", enabled=app.config.get("RATELIMIT_ENABLED", True))
    app.extensions["radbill_limiter"] = limiter
    wrapped: set[str] = set()
    for rule in app.url_map.iter_rules():
        found = limit_for(rule)
        if found is None or rule.endpoint in wrapped:
            continue
        wrapped.add(rule.endpoint)
        limit, methods = found
        view = app.view_functions[rule.endpoint]
        app.view_functions[rule.endpoint] = cast(
            Any, limiter.limit(limit, methods=methods)(view))


# What may follow the host in a URL we send a browser to after logging in: anything else is
# percent-encoded (a path from the login form's ?next= arrives decoded).
_PATH_SAFE = "/?&=%:+,;@!$'()*~.-_" + string.ascii_letters + string.digits


def safe_next(target: str | None) -> str | None:
    """*target* if it is a path on this site, normalised; None otherwise.

    Browsers drop tabs and newlines from URLs and read ``\\`` as ``/``, so ``/\\t/evil`` and
    ``/\\evil`` are ``//evil``: another host. Such characters are refused rather than cleaned
    (a real path never has them), and the target must start with exactly one ``/`` and carry
    no scheme or host once parsed."""
    if not target or len(target) > 2000:
        return None
    if any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    target = quote(target, safe=_PATH_SAFE)
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target

