"""`radbill secret rotate`: every stored secret ends up under a new key, a rotation cut short
leaves a working installation, and running processes (FreeRADIUS's policy among them) follow
the key file without a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, select

from billing.models import Subscriber
from radbill import crypto
from radbill.config import Settings
from radbill.crypto import SecretBox, SecretError, read_keys, rotate_key, secret_box
from radbill.db import session_factory
from radius.models import Nas
from tests.e2e.server import RadiusServer, wait_for

SECRET = "rotate-nas-secret"
PASSWORDS = {f"user{i}": f"pw-{i}-পাসওয়ার্ড" for i in range(7)}


def tokens(engine: Engine) -> list[str]:
    """Every stored secret, subscribers by username first (an UPDATE moves rows on
    PostgreSQL: without an order the first token is anybody's)."""
    with session_factory(engine)() as s:
        return [*s.scalars(select(Subscriber.password_enc).order_by(Subscriber.username)),
                *s.scalars(select(Nas.secret_enc).order_by(Nas.name))]


def populate(cli) -> None:  # type: ignore[no-untyped-def]
    cli("nas", "create", "core", "--ip", "127.0.0.1", "--secret", SECRET)
    cli("plan", "create", "Home", "--price", "500", "--currency", "BDT", "--rate", "5M/5M")
    for name, password in PASSWORDS.items():
        cli("subscriber", "create", name, "--password", password, "--plan", "Home")


def test_rotation_moves_every_secret_to_a_new_key_and_keeps_one_previous(
        cli, db: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    populate(cli)
    key_file = tmp_path / "secret.key"
    (first,) = read_keys(key_file)
    running = secret_box(Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path)}))
    assert "8 stored secrets re-encrypted" in cli("secret", "rotate").output
    second, previous = read_keys(key_file)
    assert previous == first and second != first
    only_new = SecretBox(second)
    assert sorted(only_new.decrypt(t) for t in tokens(db)) == sorted([*PASSWORDS.values(),
                                                                      SECRET])
    # a process that loaded the old key before the rotation reads the new tokens (it re-reads
    # the file), and what it encrypts now is under the new key
    assert running.decrypt(tokens(db)[0]) == PASSWORDS["user0"]
    assert only_new.decrypt(running.encrypt("x")) == "x"
    # the next rotation drops the first key: nothing needs it any more
    cli("secret", "rotate")
    third, kept = read_keys(key_file)
    assert kept == second and first not in read_keys(key_file)
    assert all(SecretBox(third).decrypt(t) for t in tokens(db))
    with pytest.raises(SecretError):
        SecretBox(first).decrypt(tokens(db)[0])


def test_a_rotation_cut_short_leaves_everything_readable_and_a_rerun_finishes(
        cli, db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    populate(cli)
    settings = Settings.from_env({"RADBILL_DATA_DIR": str(tmp_path),
                                  "RADBILL_DATABASE_URL": str(db.url)})
    (first,) = read_keys(tmp_path / "secret.key")
    calls = 0
    real = SecretBox.rotate

    def crash_after_three(self: SecretBox, token: str) -> str:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise KeyboardInterrupt  # the operator's Ctrl-C, or a power cut
        return real(self, token)

    monkeypatch.setattr(SecretBox, "rotate", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        rotate_key(settings, session_factory(db), batch=3)
    monkeypatch.setattr(SecretBox, "rotate", real)
    keys = read_keys(tmp_path / "secret.key")
    assert keys[1:] == [first]  # [new, current]: both kinds of token readable
    box = SecretBox(keys)
    assert sorted(box.decrypt(t) for t in tokens(db)) == sorted([*PASSWORDS.values(), SECRET])
    still_old = [t for t in tokens(db) if _readable(SecretBox(first), t)]
    assert 0 < len(still_old) < len(tokens(db))  # cut short half way

    assert rotate_key(settings, session_factory(db)) == 8
    newest = read_keys(tmp_path / "secret.key")[0]
    assert all(_readable(SecretBox(newest), t) for t in tokens(db))


def _readable(box: SecretBox, token: str) -> bool:
    try:
        box.decrypt(token)
    except SecretError:
        return False
    return True


def test_a_key_from_the_environment_is_not_rotated_from_here(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RADBILL_SECRET_KEY", Fernet.generate_key().decode())
    result = cli("secret", "rotate", ok=False)
    assert result.exit_code == 1
    assert result.output.startswith("error: the key comes from RADBILL_SECRET_KEY")
    assert result.output.count("\n") == 1


def test_a_key_file_that_is_not_a_key_is_one_clear_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "secret.key").write_text("not a key\n")
    result = cli("secret", "rotate", ok=False)
    assert result.exit_code == 1
    key_file = tmp_path / "secret.key"
    assert result.output == f"error: {key_file}: line 1 is not a radbill secret key\n"


@pytest.mark.e2e
def test_freeradius_keeps_logging_everyone_in_across_a_rotation(
        cli, db: Engine, database_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    populate(cli)
    server = RadiusServer(database_url, tmp_path).start()
    try:
        client = server.client(secret=SECRET)
        assert client.authenticate("user1", PASSWORDS["user1"]).accepted
        cli("secret", "rotate")
        # created after the rotation: its token is under the new key, which the running
        # policy has never seen until it re-reads the key file
        cli("subscriber", "create", "late", "--password", "late-pw", "--plan", "Home")
        wait_for(lambda: client.authenticate("late", "late-pw").accepted, timeout=10)
        for name, password in PASSWORDS.items():
            assert client.authenticate(name, password).accepted
    finally:
        server.stop()
    assert "cannot be decrypted" not in server.log
    # a restart reads everything under the new key
    server = RadiusServer(database_url, tmp_path).start()
    try:
        client = server.client(secret=SECRET)
        for name, password in {**PASSWORDS, "late": "late-pw"}.items():
            assert client.authenticate(name, password).accepted
    finally:
        server.stop()
    assert crypto.ENCRYPTED  # the parts registered their columns
