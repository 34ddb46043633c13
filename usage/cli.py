"""`radbill usage ...`: what subscribers used, caps, exemptions, resets and top-ups."""

from __future__ import annotations

import dataclasses

import click

from radbill.cliutil import App, emit, guarded, pass_app, table


@click.group("usage")
def usage() -> None:
    """Usage per day and period, data caps, fair-usage throttling, top-ups."""


@usage.command("show")
@click.argument("username")
@click.option("--days", type=click.IntRange(0, 366), default=0,
              help="Also list the last N days.")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def show(app: App, username: str, days: int, as_json: bool) -> None:
    """This period's usage against the cap (and the last N days)."""
    import datetime as dt

    from billing.subscribers import get_subscriber
    from usage import service

    with app.transaction() as session:
        today = app.today(session)
        data = service.usage_summary(session, username, today)
        if days:
            sub = get_subscriber(session, username)
            data["days"] = [
                {"day": str(r.day), "download": r.download, "upload": r.upload,
                 "seconds": r.seconds}
                for r in service.daily_usage(session, sub.id,
                                             today - dt.timedelta(days=days - 1),
                                             today + dt.timedelta(days=1))]
    emit(data, as_json, lambda d: (
        f"{d['username']}: {d['counted']:,} of "
        + (f"{d['cap_bytes']:,}" if d["cap_bytes"] is not None else "no cap")
        + f" bytes ({d['counts']}) from {d['period_start']} to {d['period_end']}"
        + ("; THROTTLED" if d["throttled"] else "") + ("; exempt" if d["exempt"] else "")
        + (f"\n{table(d['days'], ['day', 'download', 'upload', 'seconds'])}"
           if d.get("days") else "")))


@usage.command("exempt")
@click.argument("username")
@click.option("--off", is_flag=True, help="End the exemption.")
@click.option("--reason", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def exempt(app: App, username: str, off: bool, reason: str, as_json: bool) -> None:
    """Exempt a subscriber from the data cap (a throttle is lifted at once)."""
    from usage import service

    with app.transaction() as session:
        state = service.set_exempt(session, username, not off, today=app.today(session),
                                   reason=reason, actor="cli")
        data = {"username": username, "exempt": state.exempt}
    emit(data, as_json, lambda d: f"{d['username']}: "
         + ("exempt from the data cap" if d["exempt"] else "the data cap applies again"))


@usage.command("reset")
@click.argument("username")
@click.option("--reason", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def reset(app: App, username: str, reason: str, as_json: bool) -> None:
    """Set what counts against this period's cap back to zero."""
    from usage import service

    with app.transaction() as session:
        state = service.reset_counter(session, username, today=app.today(session),
                                      reason=reason, actor="cli")
        data = {"username": username, "period_start": str(state.period_start)}
    emit(data, as_json, lambda d: f"{d['username']}: cap counter reset for the period from "
                                  f"{d['period_start']}")


@usage.command("add-pack")
@click.argument("plan")
@click.argument("name")
@click.option("--size", required=True, help="e.g. 10G")
@click.option("--price", required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def add_pack(app: App, plan: str, name: str, size: str, price: str, as_json: bool) -> None:
    """Offer a data top-up pack on a plan."""
    from usage import service

    with app.transaction() as session:
        pack = service.add_pack(session, plan, name, size, price, actor="cli")
        data = {"plan": plan, "pack": pack.name, "size_bytes": pack.size_bytes,
                "price": str(pack.price)}
    emit(data, as_json, lambda d: f"pack {d['pack']} ({d['size_bytes']:,} bytes, "
                                  f"{d['price']}) offered on {d['plan']}")


@usage.command("topup")
@click.argument("username")
@click.argument("pack")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def topup(app: App, username: str, pack: str, as_json: bool) -> None:
    """Buy a top-up pack for a subscriber: charged, the cap raised, a throttle lifted."""
    from usage import service

    with app.transaction() as session:
        row = service.buy_topup(session, username, pack, today=app.today(session),
                                actor="cli")
        data = {"username": username, "pack": pack, "size_bytes": row.size_bytes,
                "price": str(row.price), "document": row.document,
                "period_start": str(row.period_start)}
    emit(data, as_json, lambda d: f"{d['username']}: {d['pack']} bought ({d['document']}, "
                                  f"{d['price']}); cap raised by {d['size_bytes']:,} bytes")


@usage.command("renew")
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def renew(app: App, as_json: bool) -> None:
    """Start the new period for throttled and quota subscribers whose period renewed (the
    scheduler does this after each billing run)."""
    from usage import service

    total = 0
    while True:
        with app.transaction() as session:
            n = service.renew_periods(session, app.today(session))
        total += n
        if n < 500:
            break
    emit({"renewed": total}, as_json, lambda d: f"{d['renewed']} subscribers renewed")


@usage.command("over-cap")
@click.option("--limit", type=click.IntRange(1, 5000), default=500, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_app
@guarded
def over_cap_cmd(app: App, limit: int, as_json: bool) -> None:
    """Subscribers at or over their cap this period, and whether they are throttled."""
    from usage import service

    with app.transaction() as session:
        rows = [dataclasses.asdict(r) for r in
                service.over_cap(session, app.today(session), limit=limit)]
    emit(rows, as_json, lambda d: table(d, ["username", "plan", "counted_bytes", "cap_bytes",
                                            "throttled", "exempt"]))
