"""The root command imports a part's commands only when one is used: `radbill radius run`
(which keeps running the ingester) never loads the admin UI, and every command starts faster."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from radbill.cli import PARTS, main

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted(
    m for m in ("flask", "admin.cli", "billing.cli", "radius.cli", "olt.cli", "payments.cli")
    if m in sys.modules))))
from radbill.cli import main
main(sys.argv[1:])
"""


def _loaded(*args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADBILL_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_command_imports_its_own_part_only() -> None:
    assert _loaded("radius", "--help") == ["radius.cli"]
    assert _loaded("--version") == []
    # the payments part's commands still sit under `payment`, the OLT's under `subscriber`
    assert _loaded("payment", "--help") == ["billing.cli", "payments.cli"]


def test_every_part_is_listed_and_loads() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    for name in PARTS:
        assert f"  {name} " in result.output
        assert main.get_command(None, name) is not None  # type: ignore[arg-type]
    assert {"poll", "held"} <= set(main.get_command(None, "payment").commands)  # type: ignore[arg-type, union-attr]
    assert "set-onu" in main.get_command(None, "subscriber").commands  # type: ignore[arg-type, union-attr]
