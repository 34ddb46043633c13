"""Platforms and locked dependencies: which systems the installer accepts, and that every
dependency is pinned with hashes in the lock files the installer and `make setup` use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(os.geteuid() != 0, reason="the installer runs as root")
def test_platform_checks(tmp_path: Path) -> None:
    cases = {("debian", "12"): "Debian 12 (bookworm): supported (Python 3.11, FreeRADIUS "
                               ">= 3.2.5 from bookworm-backports)",
             ("debian", "13"): "Debian 13 (trixie): supported (Python 3.13, FreeRADIUS >= 3.2.5)",
             ("ubuntu", "24.04"): "Ubuntu 24.04 (noble): supported (Python 3.12, FreeRADIUS "
                                  ">= 3.2.5)",
             ("debian", "11"): "error: debian 11 is not supported",
             ("ubuntu", "22.04"): "error: ubuntu 22.04 is not supported",
             ("centos", "9"): "error: centos 9 is not supported"}
    for (distro, version), expected in cases.items():
        release = tmp_path / f"{distro}-{version}"
        release.write_text(f'ID={distro}\nVERSION_ID="{version}"\n')
        done = subprocess.run(["bash", str(REPO / "scripts/install.sh"), "--check-platform"],
                              env={**os.environ, "RADBILL_OS_RELEASE": str(release)},
                              capture_output=True, text=True, check=False)
        said = (done.stdout + done.stderr).strip()
        assert expected in said
        assert done.returncode == (1 if "error" in expected else 0)
        assert len(said.splitlines()) == 1


def test_installer_refuses_bad_options_in_one_line() -> None:
    for args in (["--database-url", "mysql://x"], ["--db-name", "Robert'); DROP"],
                 ["--frobnicate"]):
        done = subprocess.run(["bash", str(REPO / "scripts/install.sh"), *args],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, args
        assert done.stderr.startswith("install: error: ")


def _pins(lock: Path) -> dict[str, list[tuple[str, str, list[str]]]]:
    """name -> [(version, marker, hashes)] from a `uv pip compile --generate-hashes` file."""
    pins: dict[str, list[tuple[str, str, list[str]]]] = {}
    text = lock.read_text().replace("\\\n", " ")
    for raw in text.splitlines():
        line = raw.split("#")[0].strip()
        if not line:
            continue
        m = re.match(r"([A-Za-z0-9._-]+)==(\S+)\s*(?:;\s*(.*?))?\s*((?:--hash=\S+\s*)*)$", line)
        assert m, f"{lock.name}: not a pinned, hashed line: {line}"
        name, version, marker, hashes = m.groups()
        digests = re.findall(r"--hash=sha256:([0-9a-f]{64})", hashes)
        assert digests, f"{lock.name}: {name} has no hash"
        pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append(
            (version, marker or "", digests))
    return pins


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", []),
                                              ("requirements-dev.lock", ["dev"])])
def test_lock_pins_every_dependency_with_hashes(lock: str, extras: list[str]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pins = _pins(REPO / lock)
    for spec in wanted:
        req = Requirement(spec)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{lock} lacks {name}: run 'make lock'"
        for version, _marker, _ in pins[name]:
            assert version in req.specifier, f"{lock}: {name}=={version} is not {req.specifier}"


def test_declared_python_matches_this_interpreter_and_the_lock() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    supported = SpecifierSet(project["requires-python"])
    for version in ("3.11", "3.12", "3.13"):  # Debian 12, Ubuntu 24.04, Debian 13
        assert f"{version}.0" in supported
    assert "3.14.0" not in supported and "3.10.0" not in supported
    assert f"{sys.version_info.major}.{sys.version_info.minor}.0" in supported


def test_setup_and_installer_install_from_the_locks() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"pip install [^\n]*--require-hashes[^\n]*\\\n[^\n]*-r requirements-dev\.lock",
                     makefile)
    installer = (REPO / "scripts/install.sh").read_text()
    assert re.search(r"--require-hashes --only-binary :all: -r \"\$PREFIX/app/requirements\.lock\"",
                     installer)
