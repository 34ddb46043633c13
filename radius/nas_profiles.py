"""NAS type profiles: how each kind of NAS is told a subscriber's speed and walled garden.

Vendor differences are data (``radius/profiles/nas_types.toml``), loaded and validated once
at start; the policy and enforcement read a :class:`NasProfile`, never a vendor name. A
profile renders attribute templates from a :class:`~billing.rates.RatePair`, so adding a
vendor means adding a table to the file, not a code path.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from billing.rates import Burst, RatePair, mikrotik_rate_limit

DEFAULT_FILE = Path(__file__).resolve().parent / "profiles" / "nas_types.toml"
PLACEHOLDERS = frozenset({"rate_mikrotik", "down_bps", "up_bps", "down_kbps", "up_kbps",
                          "garden_list", "garden_url", "garden_pool"})
GARDEN_SETTINGS = frozenset({"garden_url", "garden_pool"})
# A prepaid data quota's remainder: whole, and as RADIUS carries 64 bits (low 32 bits and
# the Gigawords high part).
QUOTA_PLACEHOLDERS = frozenset({"total_bytes", "total_low", "total_gigawords"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")  # fits Nas.nas_type (String(16))
_ATTR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
_FIELD_RE = re.compile(r"{([^{}]*)}")
MAX_VALUE = 253  # one RADIUS attribute

Template = tuple[tuple[str, str], ...]


class ProfileError(ValueError):
    """The NAS profile file is malformed."""


@dataclass(frozen=True)
class GardenSettings:
    """The operator's walled-garden settings profiles may refer to."""

    garden_list: str = "radbill-suspended"
    garden_url: str = ""
    garden_pool: str = ""


@dataclass(frozen=True)
class NasProfile:
    """One NAS type: attribute templates for speed, walled garden and CoA."""

    name: str
    label: str
    rate: Template
    garden: Template
    garden_form: str
    garden_requires: tuple[str, ...]
    coa_rate: Template
    coa_garden: Template
    quota: Template = ()  # the data-quota remainder on an Access-Accept ((): not supported)

    def can_garden(self, garden: GardenSettings) -> bool:
        """True if this NAS can hold a subscriber in the walled garden with these settings."""
        return bool(self.garden) and all(getattr(garden, s) for s in self.garden_requires)

    def rate_reply(self, rate: RatePair, burst: Burst | None = None) -> list[tuple[str, str]]:
        """The Access-Accept attributes for this speed."""
        return render(self.rate, rate, burst, GardenSettings())

    def garden_reply(self, rate: RatePair, garden: GardenSettings) -> list[tuple[str, str]]:
        """The Access-Accept attributes holding a subscriber in the walled garden."""
        return render(self.garden, rate, None, garden)

    def coa_reply(self, rate: RatePair | None, burst: Burst | None, garden: GardenSettings,
                  *, in_garden: bool) -> list[tuple[str, str]]:
        """The CoA-Request attributes for a live change ([] if this NAS cannot take it live)."""
        if rate is None:
            return []
        template = self.coa_garden if in_garden else self.coa_rate
        return render(template, rate, burst, garden)

    def quota_reply(self, left_bytes: int) -> list[tuple[str, str]]:
        """The Access-Accept attributes that let the NAS itself stop the session when
        *left_bytes* more have passed ([] if this NAS type cannot)."""
        values = {"total_bytes": str(left_bytes), "total_low": str(left_bytes & 0xFFFFFFFF),
                  "total_gigawords": str(left_bytes >> 32)}
        return [(name, value.format_map(values)) for name, value in self.quota]


def _kbps(bps: int) -> int:
    return max(1, math.ceil(bps / 1000))


def render(template: Template, rate: RatePair, burst: Burst | None,
           garden: GardenSettings) -> list[tuple[str, str]]:
    """Fill a template's placeholders."""
    return list(_render(template, rate, burst, garden))


@lru_cache(maxsize=4096)  # a handful of plans and garden settings: rendered once each
def _render(template: Template, rate: RatePair, burst: Burst | None,
            garden: GardenSettings) -> tuple[tuple[str, str], ...]:
    values = {
        "rate_mikrotik": mikrotik_rate_limit(rate, burst),
        "down_bps": str(rate.down), "up_bps": str(rate.up),
        "down_kbps": str(_kbps(rate.down)), "up_kbps": str(_kbps(rate.up)),
        "garden_list": garden.garden_list, "garden_url": garden.garden_url,
        "garden_pool": garden.garden_pool,
    }
    return tuple((name, value.format_map(values)) for name, value in template)


def _template(name: str, key: str, raw: object,
              allowed: frozenset[str] = PLACEHOLDERS) -> Template:
    if not isinstance(raw, list):
        raise ProfileError(f"NAS type {name}: {key} must be a list of [attribute, value]")
    out: list[tuple[str, str]] = []
    for item in raw:
        if (not isinstance(item, list) or len(item) != 2
                or not all(isinstance(x, str) for x in item)):
            raise ProfileError(f"NAS type {name}: {key} entries are [attribute, value] strings")
        attr, value = item
        if not _ATTR_RE.fullmatch(attr):
            raise ProfileError(f"NAS type {name}: {key}: bad attribute name {attr!r}")
        unknown = set(_FIELD_RE.findall(value)) - allowed
        if unknown or len(value) > MAX_VALUE or any(c in value for c in '"\\\n\r'):
            raise ProfileError(f"NAS type {name}: {key}: bad value {value!r}"
                               + (f" (unknown placeholder {sorted(unknown)[0]})" if unknown
                                  else ""))
        out.append((attr, value))
    return tuple(out)


def parse(data: Mapping[str, object]) -> dict[str, NasProfile]:
    """Validated profiles from the parsed TOML document."""
    profiles: dict[str, NasProfile] = {}
    for name, body in data.items():
        if not _NAME_RE.fullmatch(name):
            raise ProfileError(f"NAS type name {name!r}: 1-16 of a-z, 0-9 and -")
        if not isinstance(body, dict):
            raise ProfileError(f"NAS type {name}: must be a table")
        unknown = set(body) - {"label", "rate", "garden", "garden_form", "garden_requires",
                               "coa_rate", "coa_garden", "quota"}
        if unknown:
            raise ProfileError(f"NAS type {name}: unknown key {sorted(unknown)[0]!r}")
        requires = body.get("garden_requires", [])
        if not isinstance(requires, list) or not set(requires) <= GARDEN_SETTINGS:
            raise ProfileError(f"NAS type {name}: garden_requires takes "
                               f"{', '.join(sorted(GARDEN_SETTINGS))}")
        label = body.get("label", name)
        form = body.get("garden_form", "none")
        if not isinstance(label, str) or not isinstance(form, str):
            raise ProfileError(f"NAS type {name}: label and garden_form are strings")
        profiles[name] = NasProfile(
            name=name, label=label[:200], garden_form=form[:32],
            rate=_template(name, "rate", body.get("rate", [])),
            garden=_template(name, "garden", body.get("garden", [])),
            garden_requires=tuple(requires),
            coa_rate=_template(name, "coa_rate", body.get("coa_rate", [])),
            coa_garden=_template(name, "coa_garden", body.get("coa_garden", [])),
            quota=_template(name, "quota", body.get("quota", []), QUOTA_PLACEHOLDERS),
        )
    if "mikrotik" not in profiles:
        raise ProfileError("the NAS profiles must define mikrotik (the default type)")
    return profiles


def load(path: Path | None = None) -> dict[str, NasProfile]:
    """The NAS profiles from *path*, ``$RADBILL_NAS_PROFILES`` or the bundled file."""
    path = path or Path(os.environ.get("RADBILL_NAS_PROFILES") or DEFAULT_FILE)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read NAS profiles {path}: {exc}") from None
    return parse(data)


_cache: dict[str, NasProfile] | None = None


def profiles() -> dict[str, NasProfile]:
    """The loaded profiles (loaded once per process)."""
    global _cache  # noqa: PLW0603 - one immutable table per process, loaded on first use
    if _cache is None:
        _cache = load()
    return _cache


def nas_types() -> tuple[str, ...]:
    """The supported NAS type names."""
    return tuple(profiles())


def profile_for(nas_type: str | None) -> NasProfile:
    """The profile of *nas_type*; an unknown type gets ``other`` (no garden: never free
    Internet for a suspended subscriber), or a bare profile if even that is missing."""
    table = profiles()
    if nas_type is not None and nas_type in table:
        return table[nas_type]
    return table.get("other") or NasProfile("other", "other", (), (), "none", (), (), ())
