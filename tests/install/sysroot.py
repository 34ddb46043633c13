"""A clean root to install radbill into: an overlay on this machine's own root.

The installer runs in it (``chroot``) exactly as on a server, as root, and what it writes
(the user, /etc/radbill, /opt/radbill, /var/lib/radbill, the units) lands in a private upper
directory, so the machine itself is never changed. The root holds this machine's Debian
packages (so no package is downloaded) but no trace of radbill. systemd does not run in it:
the tests start each service by running its unit's ``ExecStart`` line, as the unit's user,
with the unit's environment file.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path


class SysRoot:
    """An overlay of / mounted at :attr:`path`; :meth:`destroy` unmounts and removes it."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="radbill-sysroot-"))
        self.path = self.base / "root"

    def mount(self) -> SysRoot:
        for d in ("upper", "work", "root"):
            # the upper directory is the root directory inside: as open as / itself, whatever
            # umask this process has (radbill's CLI, run in-process by earlier tests, sets 077)
            (self.base / d).mkdir(mode=0o755)
            (self.base / d).chmod(0o755)
        subprocess.run(["mount", "-t", "overlay", f"radbill-{uuid.uuid4().hex[:8]}", "-o",
                        f"lowerdir=/,upperdir={self.base / 'upper'},workdir={self.base / 'work'}",
                        str(self.path)], check=True, capture_output=True)
        for sub in ("proc", "dev", "sys"):
            subprocess.run(["mount", "--rbind", f"/{sub}", str(self.path / sub)], check=True)
            subprocess.run(["mount", "--make-rslave", str(self.path / sub)], check=True)
        return self

    def destroy(self) -> None:
        subprocess.run(["umount", "-R", "-l", str(self.path)], check=False, capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def __truediv__(self, inside: str) -> Path:
        return self.path / inside.lstrip("/")

    def run(self, *argv: str, env: Mapping[str, str] | None = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run *argv* as root inside the root, from a shell with umask 077 (a hardened
        server's administrator: what the installer writes must not depend on it)."""
        full = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG": "C.UTF-8", "HOME": "/root", **(env or {})}
        done = subprocess.run(["chroot", str(self.path), "/bin/sh", "-c",
                               'umask 077; exec "$@"', "sh", *argv], env=full, text=True,
                              capture_output=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited {done.returncode}:\n"
                                 f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done


def read_unit(path: Path) -> dict[str, list[str]]:
    """A unit file's settings, every value of each key in order (sections merged)."""
    out: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads them (comments and blanks skipped)."""
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


def exec_start(root: SysRoot, unit: Path, extra_env: Mapping[str, str] | None = None
               ) -> tuple[list[str], dict[str, str]]:
    """The argv and environment systemd would start *unit*'s ExecStart with, inside *root*:
    ``chroot --userspec`` as its User/Group, its Environment= and EnvironmentFile= values,
    ``${VAR}`` expanded from them as systemd does."""
    u = read_unit(unit)
    # systemd's own PATH for services
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG": "C.UTF-8"}
    for assignment in u.get("Environment", []):
        for word in shlex.split(assignment):
            key, _, value = word.partition("=")
            env[key] = value
    for name in u.get("EnvironmentFile", []):
        env.update(env_file(root / name.lstrip("-")))
    env.update(extra_env or {})
    (line,) = u["ExecStart"]
    argv = [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), w)
            for w in shlex.split(line)]
    user, group = u["User"][0], u.get("Group", u["User"])[0]
    env.update({"USER": user, "LOGNAME": user, "HOME": "/var/lib/radbill"})
    workdir = u.get("WorkingDirectory", ["/"])[0]
    wrapped = ["/usr/sbin/chroot", f"--userspec={user}:{group}", str(root.path), "/bin/sh", "-c",
               f"umask {u.get('UMask', ['0022'])[0]}; cd {shlex.quote(workdir)} && exec "
               + shlex.join(argv)]
    return wrapped, env
