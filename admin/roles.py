"""Who may do what: one table, read by every route (pages and API) through its permission."""

from __future__ import annotations

import enum

from admin.models import Role


class Permission(enum.StrEnum):
    """What a route needs. Each route declares exactly one (see ``admin.auth.requires``)."""

    PUBLIC = "public"  # the login page, the OpenAPI document, static files
    READ = "read"  # every page and list
    OPERATE = "operate"  # subscriber and money actions: payments, promises, suspend, ...
    MANAGE = "manage"  # plans, NAS devices, staff


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.READ, Permission.OPERATE, Permission.MANAGE}),
    Role.BILLING: frozenset({Permission.READ, Permission.OPERATE}),
    Role.NOC: frozenset({Permission.READ}),
}


def allowed(role: str | None, permission: Permission) -> bool:
    """True if a user with *role* (None: anonymous) may use a route needing *permission*."""
    if permission is Permission.PUBLIC:
        return True
    if role is None:
        return False
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False
