"""The policy inside FreeRADIUS reads through the driver alone: SQLAlchemy and the ORM models
(some 35 MB of FreeRADIUS's memory) are never imported there (issue 14, the 150 MB goal)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from radbill.crypto import write_keys
from radbill.db import session_factory
from tests.factories import make_plan, make_subscriber

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
from radius.runtime import start_policy
config = json.loads(sys.argv[1])
hook, refresher = start_policy(config)
refresher.stop()
record = hook.snapshot.lookup("alice")[0]
print(json.dumps({
    "loaded": hook.snapshot.loaded,
    "password": record.password if record else None,
    "orm": sorted(m for m in sys.modules
                  if m.split(".")[0] == "sqlalchemy" or m in ("billing.models", "radius.models")),
}))
"""


def test_starting_the_policy_imports_no_sqlalchemy(db, box, database_url, tmp_path: Path  # type: ignore[no-untyped-def]
                                                   ) -> None:
    key_file = tmp_path / "secret.key"
    write_keys(key_file, box.keys)
    with session_factory(db)() as s, s.begin():
        make_plan(s)
        make_subscriber(s, box, password="pw-a")
    config = {"database_url": database_url, "data_dir": str(tmp_path),
              "secret_key_file": str(key_file)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(config)], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"loaded": True, "password": "pw-a", "orm": []}
