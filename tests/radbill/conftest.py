"""The `cli` fixture: the real `radbill` command on the test database."""

import pytest
from click.testing import CliRunner

from radbill.cli import main


@pytest.fixture
def cli(db, database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Run `radbill ARGS`; asserts exit 0 unless ``ok=False``."""
    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    monkeypatch.setenv("RADBILL_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("db", "upgrade")
    return run
