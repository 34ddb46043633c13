"""One database session per request (the Flask tutorial's ``get_db``), closed at teardown.

Views that change something call :func:`commit` after the service calls; anything not
committed (a GET, or a request that failed half-way) is rolled back when the request ends, so
a failed action leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from radbill.config import Settings
from radbill.crypto import SecretBox, secret_box
from radbill.db import session_factory, utcnow


def init_app(app: Flask, engine: Engine) -> None:
    """Attach the engine and the teardown to *app*."""
    app.extensions["radbill_engine"] = engine
    app.extensions["radbill_sessions"] = session_factory(engine)
    app.teardown_appcontext(close_db)


def factory() -> sessionmaker[Session]:
    """The app's session factory."""
    return current_app.extensions["radbill_sessions"]


def get_db() -> Session:
    """The request's session (opened on first use)."""
    if "db" not in g:
        g.db = factory()()
    return g.db


def commit() -> None:
    """Commit the request's work so far."""
    get_db().commit()


def close_db(_exc: BaseException | None = None) -> None:
    db: Session | None = g.pop("db", None)
    if db is not None:
        db.rollback()
        db.close()


def settings() -> Settings:
    """The radbill settings the app was built with."""
    return current_app.config["RADBILL_SETTINGS"]


def box() -> SecretBox:
    """Encrypts subscriber passwords and NAS secrets at rest."""
    if "box" not in current_app.extensions:
        current_app.extensions["box"] = secret_box(settings())
    return current_app.extensions["box"]


def now() -> dt.datetime:
    """The current time (UTC)."""
    return utcnow()


def today() -> dt.date:
    """Today in the ISP's time zone."""
    from billing.isp import local_today
    from billing.isp import settings as isp_settings

    return local_today(isp_settings(get_db()), now())
