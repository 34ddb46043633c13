#!/usr/bin/env bash
# Installs everything radbill needs on a fresh Debian 12 (bookworm) machine.
# Idempotent: a second run only checks. Run as root or with sudo available.
#
#   FreeRADIUS >= 3.2.5 (BlastRADIUS fixes): bookworm ships 3.2.1, so it comes from
#   bookworm-backports (3.2.7). PostgreSQL server binaries so tests can start their own
#   cluster when none is running. Debian's python3 (3.11) for the virtualenv, because
#   rlm_python3 embeds Debian's libpython3.11 and imports our code from that venv.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# chromium: the admin UI's browser tests (Playwright drives it; it never downloads its own).
# Fonts: invoices are rendered with DejaVu Sans, and Lohit Bengali for Bengali names.
# redis-server: the test that several web workers share one rate-limit count starts its own.
# snmp (net-snmp's snmpget/snmpset/snmpwalk): conformance of the simulated OLT agent.
# systemd: the install tests check the units with systemd-analyze verify.
need_pkgs=(freeradius freeradius-python3 freeradius-utils python3 python3-venv python3-dev
           postgresql postgresql-client build-essential libpq-dev
           fonts-dejavu-core fonts-lohit-beng-bengali chromium redis-server snmp systemd)

freeradius_ok() {
    command -v freeradius >/dev/null 2>&1 || return 1
    local v
    v=$(dpkg-query -W -f='${Version}' freeradius 2>/dev/null | sed 's/+.*//; s/-.*//')
    dpkg --compare-versions "$v" ge 3.2.5
}

missing=()
for p in "${need_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ] && freeradius_ok; then
    echo "setup: system packages present (freeradius $(dpkg-query -W -f='${Version}' freeradius))"
    exit 0
fi

. /etc/os-release
if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "setup: adding bookworm-backports"
        $SUDO tee /etc/apt/sources.list.d/radbill-backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    BACKPORTS=(-t bookworm-backports)
else
    BACKPORTS=()
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends python3 python3-venv python3-dev \
    postgresql postgresql-client build-essential libpq-dev \
    fonts-dejavu-core fonts-lohit-beng-bengali chromium redis-server snmp systemd
$SUDO apt-get install -y -q --no-install-recommends "${BACKPORTS[@]}" \
    freeradius freeradius-python3 freeradius-utils freeradius-postgresql

# The Debian package enables and starts a system-wide radiusd on 1812/1813; radbill runs its
# own instance from a rendered config, so the stock service is stopped and disabled.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now freeradius >/dev/null 2>&1 || true
fi
# Without systemd the package's init script may have started it anyway: stop only a server
# on the stock configuration (radbill's own always run with -d <dir>).
for pid in $(pgrep -x freeradius || true); do
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- " -d " || kill "$pid" 2>/dev/null || true
done

freeradius_ok || { echo "setup: FreeRADIUS >= 3.2.5 is required, found $(dpkg-query -W -f='${Version}' freeradius)" >&2; exit 1; }
echo "setup: freeradius $(dpkg-query -W -f='${Version}' freeradius) installed"
