"""`radbill --version` names the release, and CHANGELOG.md's newest entry is that release."""

import re
import subprocess
import sys
from pathlib import Path

import radbill

REPO = Path(__file__).resolve().parents[2]


def test_version_matches_the_changelog() -> None:
    done = subprocess.run([sys.executable, "-m", "radbill.cli", "--version"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"radbill {radbill.__version__}"
    releases = re.findall(r"^## (\d+\.\d+\.\d+)", (REPO / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == radbill.__version__
    assert releases[-1] == "0.1.0"  # the first release, whose schema the upgrade test starts from


def test_changelog_names_the_head_schema() -> None:
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from radbill.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config(create_engine("sqlite://"))).get_current_head()
    newest = (REPO / "CHANGELOG.md").read_text().split("\n## ")[1]
    assert f"Schema: {head}" in newest
