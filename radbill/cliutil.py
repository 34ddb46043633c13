"""What every part's command group uses: the app context, errors as one line, ``--json``.

Each part owns its ``click`` group (``billing/cli.py``, ``radius/cli.py``, ...); the root
(:mod:`radbill.cli`) only assembles them. This module sits below the parts, so the arrows run
one way. Every command either completes or changes nothing. Bad input gets one line on stderr
that starts with ``error:`` and a non-zero exit status; every list and show takes ``--json``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from radbill.config import ConfigError, Settings
from radbill.crypto import SecretBox
from radbill.errors import DomainError

F = TypeVar("F", bound=Callable[..., Any])


class App:
    """What every command needs: settings and, on first use, an engine."""

    def __init__(self, settings: Settings, suspension_holds: Any = None) -> None:
        self.settings = settings
        self._engine: Engine | None = None
        # Who not to suspend now (billing.run.SuspensionHolds), given by the root, which
        # knows the parts: billing never imports payments.
        self.suspension_holds = suspension_holds

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from radbill.db import engine_from_settings

            self._engine = engine_from_settings(self.settings)
        return self._engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        from radbill.db import session_factory, unit_of_work

        with unit_of_work(session_factory(self.engine)) as session:
            yield session

    def box(self) -> SecretBox:
        from radbill.crypto import secret_box

        return secret_box(self.settings)

    def today(self, session: Session) -> Any:
        """Today in the ISP's time zone."""
        from billing.isp import local_today, settings
        from radbill.db import utcnow

        return local_today(settings(session), utcnow())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class OneLineErrors(click.Group):
    """The root group: every usage error (a missing argument, an impossible date, an unknown
    option) is one ``error:`` line and a non-zero exit, like the errors of the services."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.Abort:
            fail("aborted", 1)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            fail(message, exc.exit_code)
        if isinstance(result, int):
            sys.exit(result)
        return result


class LazyGroup(OneLineErrors):
    """The root group, whose parts' command groups are imported when one of them is used: a
    command pays for its own part's imports only (``radbill radius run``, which keeps running
    the ingester, never loads Flask or the PDF renderer). *lazy*: command name -> a function
    returning the command."""

    def __init__(self, *args: Any, lazy: dict[str, Callable[[], click.Command]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return super().get_command(ctx, cmd_name)


class Day(click.ParamType):
    """A calendar date written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        text = str(value).strip()
        try:
            if len(text) != 10:
                raise ValueError(text)
            return dt.datetime.strptime(text, "%Y-%m-%d").date()  # noqa: DTZ007 - a date
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


DAY = Day()


def on_option(fn: F) -> F:
    """``--on DATE``: when what is recorded happened (default today, ISP time)."""
    return click.option("--on", "on", type=DAY,
                        help="When it happened (YYYY-MM-DD; default today, ISP time; "
                             "never in the future).")(fn)


def as_of_option(fn: F) -> F:
    """``--as-of DATE`` for reports."""
    return click.option("--as-of", "as_of", type=DAY,
                        help="Report as of this day (YYYY-MM-DD; default today).")(fn)


def not_future(day: dt.date | None, today: dt.date, what: str = "date") -> dt.date:
    """*day* (default *today*), refused when it lies in the future."""
    if day is None:
        return today
    if day > today:
        from radbill.errors import InvalidInput

        raise InvalidInput(f"{what} {day} is in the future (today is {today})")
    return day


def fail(message: str, code: int = 1) -> None:
    """Print one ``error:`` line and exit."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def guarded(fn: F) -> F:
    """Turn domain and database errors into one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            fail(str(exc))
        except ConfigError as exc:
            fail(f"configuration: {exc}")
        except OperationalError as exc:
            fail(f"database unreachable or not migrated: {str(exc.orig).strip().splitlines()[0]}"
                 " (check RADBILL_DATABASE_URL, run 'radbill db upgrade')", code=2)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug: one line for the operator, the traceback in the log
            logging.getLogger("radbill").debug("unexpected error", exc_info=True)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            fail(f"unexpected {type(exc).__name__}: {first} (a bug in radbill: please report "
                 "it; run with -v for the details)", code=3)
        return None

    return wrapper  # type: ignore[return-value]


def emit(data: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    """Print *data* as JSON or as text."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(render(data))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain text table."""
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


pass_app = click.make_pass_decorator(App)
