"""End-to-end fixtures: a database with a NAS, and a real FreeRADIUS reading it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from radbill.config import Settings
from radbill.crypto import SecretBox, load_key
from radbill.db import session_factory
from radius.nas import create_nas
from tests.conftest import wipe
from tests.e2e.server import SECRET, RadiusServer
from tests.factories import make_plan

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("radbill-data")


@pytest.fixture(scope="module")
def server_box(data_dir: Path) -> SecretBox:
    """The key the FreeRADIUS under test decrypts with."""
    return SecretBox(load_key(Settings.from_env({"RADBILL_DATA_DIR": str(data_dir)})))


@pytest.fixture(scope="module")
def seeded(engine: Engine, server_box: SecretBox) -> Engine:
    """An empty database with one NAS (127.0.0.1) and the plan Home-20."""
    wipe(engine)
    with session_factory(engine)() as s, s.begin():
        create_nas(s, server_box, name="e2e", ip="127.0.0.1", secret=SECRET)
        make_plan(s, burst="40M/10M", ip_pool="pool-home")
    return engine


@pytest.fixture(scope="module")
def radius(seeded: Engine, database_url: str, data_dir: Path) -> Iterator[RadiusServer]:
    server = RadiusServer(database_url, data_dir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def detailed_radius(seeded: Engine, database_url: str, data_dir: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadiusServer]:
    """A second FreeRADIUS on the same database that tells subscribers the reason of a
    reject (once their password was right)."""
    server = RadiusServer(database_url, tmp_path_factory.mktemp("detailed"),
                          RADBILL_DETAILED_REJECT_MESSAGES="yes",
                          RADBILL_SECRET_KEY_FILE=str(data_dir / "secret.key")).start()
    yield server
    server.stop()
