#!/usr/bin/env bash
# Installs radbill as system services on this server (run as root): `make install` runs it.
#
#   scripts/install.sh                          PostgreSQL on this server (database and role made here)
#   scripts/install.sh --database-url URL       an existing PostgreSQL server (its DBA made the
#                                               database and the role; URL: postgresql+psycopg://...)
#   scripts/install.sh --uninstall              stop and remove the services and the code; keep
#                                               the data, the settings, the database and the user
#   scripts/install.sh --uninstall --purge      remove those too (the database only if made here)
#   scripts/install.sh --check-platform         say whether this system is supported, change nothing
#
# What it makes: a `radbill` system user; the code in /opt/radbill/app and its virtualenv in
# /opt/radbill/venv (every package from requirements.lock, hashes checked); the settings in
# /etc/radbill/radbill.env (root:radbill, mode 0640); the data in /var/lib/radbill; the schema
# (migrations); the first admin user of the web UI (its password printed once); systemd units
# radbill-radius, radbill-web, radbill-scheduler, radbill-enforcement and radbill-notify,
# grouped by radbill.target, enabled and started when systemd runs. Idempotent: a second run
# changes nothing; a run from a newer release updates the code, migrates and restarts.
#
# Supported: Debian 12 (FreeRADIUS from bookworm-backports, Python 3.11), Debian 13 and
# Ubuntu 24.04 (FreeRADIUS >= 3.2.5 native, Python 3.13 and 3.12). rlm_python3 embeds the
# system's libpython, so the virtualenv is always built from /usr/bin/python3.
set -euo pipefail
# What the installer writes (the code, the venv, unit files) must be readable by the radbill
# user and by systemd whatever umask the administrator's shell has (077 is common on hardened
# servers); secrets are made private explicitly where they are written.
umask 022

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=${RADBILL_PREFIX:-/opt/radbill}
ETC=/etc/radbill
ENV_FILE=$ETC/radbill.env
DATA=/var/lib/radbill
UNIT_DIR=/etc/systemd/system
WRAPPER=/usr/local/bin/radbill
OS_RELEASE=${RADBILL_OS_RELEASE:-/etc/os-release}
UNITS=(radbill-radius radbill-web radbill-scheduler radbill-enforcement radbill-notify)

DATABASE_URL="" DB_NAME=radbill DB_USER=radbill ADMIN=admin MODE=install PURGE=0 SKIP_PACKAGES=0

say() { echo "install: $*"; }
die() { echo "install: error: $*" >&2; exit 1; }

usage() { sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --database-url) DATABASE_URL=${2:?--database-url needs a URL}; shift 2 ;;
        --db-name) DB_NAME=${2:?}; shift 2 ;;
        --db-user) DB_USER=${2:?}; shift 2 ;;
        --admin) ADMIN=${2:?}; shift 2 ;;
        --skip-packages) SKIP_PACKAGES=1; shift ;;
        --uninstall) MODE=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        --check-platform) MODE=check; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
for name in "$DB_NAME" "$DB_USER" "$ADMIN"; do
    [[ "$name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "$name: names are lower-case letters, digits and _"
done
if [ -n "$DATABASE_URL" ] && [[ ! "$DATABASE_URL" =~ ^postgresql(\+psycopg)?:// ]]; then
    die "--database-url must be a postgresql+psycopg:// URL"
fi

# -- platform -----------------------------------------------------------------------------------

# Sets DISTRO, PYTHON_WANTED and BACKPORTS for this system, or stops with one line.
platform() {
    [ -r "$OS_RELEASE" ] || die "$OS_RELEASE is missing: cannot tell which system this is"
    local ID="" VERSION_ID="" VERSION_CODENAME=""
    # shellcheck disable=SC1090
    . "$OS_RELEASE"
    BACKPORTS=""
    case "$ID:$VERSION_ID" in
        debian:12) DISTRO="Debian 12 (bookworm)"; PYTHON_WANTED=3.11; BACKPORTS=bookworm-backports ;;
        debian:13) DISTRO="Debian 13 (trixie)"; PYTHON_WANTED=3.13 ;;
        ubuntu:24.04) DISTRO="Ubuntu 24.04 (noble)"; PYTHON_WANTED=3.12 ;;
        *) die "${ID:-unknown} ${VERSION_ID:-} is not supported: radbill installs on Debian 12, Debian 13 and Ubuntu 24.04" ;;
    esac
}

python_ok() {
    local v
    v=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
        || die "/usr/bin/python3 is missing"
    [ "$v" = "$PYTHON_WANTED" ] \
        || die "/usr/bin/python3 is $v; $DISTRO's FreeRADIUS embeds Python $PYTHON_WANTED"
}

freeradius_ok() {
    local v
    v=$(dpkg-query -W -f='${Version}' freeradius 2>/dev/null | sed 's/^[0-9]*://; s/+.*//; s/-.*//')
    [ -n "$v" ] || die "freeradius is not installed"
    dpkg --compare-versions "$v" ge 3.2.5 \
        || die "FreeRADIUS $v is older than 3.2.5 (BlastRADIUS fixes): install it from ${BACKPORTS:-the distribution}"
}

packages() {
    local need=(freeradius freeradius-python3 freeradius-utils python3 python3-venv
                postgresql-client fonts-dejavu-core fonts-lohit-beng-bengali)
    [ -n "$DATABASE_URL" ] || need+=(postgresql)
    local missing=() p
    for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$SKIP_PACKAGES" = 0 ] || die "missing packages: ${missing[*]}"
        local target=()
        if [ -n "$BACKPORTS" ]; then
            if ! grep -rqs "$BACKPORTS" /etc/apt/sources.list /etc/apt/sources.list.d/; then
                say "adding $BACKPORTS (FreeRADIUS >= 3.2.5)"
                printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
                    "$BACKPORTS" > /etc/apt/sources.list.d/radbill-backports.sources
            fi
            target=(-t "$BACKPORTS")
        fi
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${target[@]}" "${missing[@]}"
        # radbill runs its own FreeRADIUS (radbill-radius): the stock one must not hold 1812.
        if [ -d /run/systemd/system ]; then systemctl disable --now freeradius >/dev/null 2>&1 || true; fi
    fi
    freeradius_ok
    python_ok
}

# -- files --------------------------------------------------------------------------------------

# put SRC DEST MODE OWNER: install a file only when its content differs; fix mode and owner.
put() {
    if ! cmp -s "$1" "$2"; then install -m "$3" -o "${4%:*}" -g "${4#*:}" "$1" "$2"; CHANGED=1; fi
    chmod "$3" "$2"; chown "$4" "$2"
}

user_and_dirs() {
    if ! getent passwd radbill >/dev/null; then
        say "creating the radbill system user"
        useradd --system --user-group --home-dir "$DATA" --no-create-home \
            --shell /usr/sbin/nologin --comment "radbill" radbill
    fi
    install -d -m 0750 -o radbill -g radbill "$DATA"
    install -d -m 0750 -o root -g radbill "$ETC"
    install -d -m 0755 -o root -g root "$PREFIX"
}

# The code: the release's files (no tests' output, no virtualenv), replaced only when they differ.
code() {
    local tarball sum
    tarball=$(mktemp)
    tar -C "$SRC" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
        --exclude=./.git --exclude=./.venv --exclude=./var --exclude=./test-artifacts \
        --exclude='__pycache__' --exclude='*.egg-info' --exclude=./build -cf "$tarball" .
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [ "$(cat "$PREFIX/app.sha256" 2>/dev/null)" != "$sum" ]; then
        say "installing the code in $PREFIX/app"
        rm -rf "$PREFIX/app.new"
        install -d -m 0755 "$PREFIX/app.new"
        tar -C "$PREFIX/app.new" -xf "$tarball"
        /usr/bin/python3 -m compileall -q "$PREFIX/app.new" >/dev/null || true
        rm -rf "$PREFIX/app.old"
        [ ! -d "$PREFIX/app" ] || mv "$PREFIX/app" "$PREFIX/app.old"
        mv "$PREFIX/app.new" "$PREFIX/app"
        rm -rf "$PREFIX/app.old"
        echo "$sum" > "$PREFIX/app.sha256"
        CODE_CHANGED=1
    fi
    rm -f "$tarball"
}

# The virtualenv: every package pinned, with its hash, by requirements.lock.
venv() {
    local sum site
    [ -x "$PREFIX/venv/bin/python" ] || { say "creating $PREFIX/venv"; /usr/bin/python3 -m venv "$PREFIX/venv"; }
    sum=$(sha256sum "$PREFIX/app/requirements.lock" | cut -d' ' -f1)
    if [ "$(cat "$PREFIX/venv/.lock.sha256" 2>/dev/null)" != "$sum" ]; then
        say "installing the locked dependencies"
        "$PREFIX/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            --require-hashes --only-binary :all: -r "$PREFIX/app/requirements.lock"
        echo "$sum" > "$PREFIX/venv/.lock.sha256"
        CODE_CHANGED=1
    fi
    # radbill itself is the code in $PREFIX/app, found through a .pth (nothing to build)
    site=$("$PREFIX/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    local pth
    pth=$(mktemp); echo "$PREFIX/app" > "$pth"; put "$pth" "$site/radbill.pth" 0644 root:root; rm -f "$pth"
    # `radbill ...` for the operator: the settings of the services, run as the radbill user
    local w
    w=$(mktemp)
    cat > "$w" <<EOF
#!/bin/sh
# radbill's command line with the services' settings, as the radbill user (scripts/install.sh)
set -a; . $ENV_FILE; set +a
cd $DATA
if [ "\$(id -u)" = 0 ]; then exec runuser -u radbill -- $PREFIX/venv/bin/python -m radbill.cli "\$@"; fi
exec $PREFIX/venv/bin/python -m radbill.cli "\$@"
EOF
    put "$w" "$WRAPPER" 0755 root:root; rm -f "$w"
}

random_secret() { /usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

# A database and role on this server's PostgreSQL; prints the URL when it made a new password.
local_database() {
    local exists password=""
    exists=$(psql_admin -tA -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")
    if [ "$exists" != 1 ] || [ ! -f "$ENV_FILE" ]; then
        password=$(random_secret)
        if [ "$exists" = 1 ]; then
            psql_admin -c "ALTER ROLE \"$DB_USER\" LOGIN PASSWORD '$password'" >/dev/null
        else
            say "creating the PostgreSQL role $DB_USER" >&2
            psql_admin -c "CREATE ROLE \"$DB_USER\" LOGIN PASSWORD '$password'" >/dev/null
        fi
    fi
    exists=$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")
    if [ "$exists" != 1 ]; then
        say "creating the PostgreSQL database $DB_NAME" >&2
        psql_admin -c "CREATE DATABASE \"$DB_NAME\" OWNER \"$DB_USER\" ENCODING 'UTF8' TEMPLATE template0" >/dev/null
    fi
    if [ -n "$password" ]; then
        echo "postgresql+psycopg://$DB_USER:$password@${PGHOST:-localhost}:${PGPORT:-5432}/$DB_NAME"
    fi
}

settings() {
    local url="$DATABASE_URL" new
    if [ -z "$DATABASE_URL" ]; then
        url=$(local_database)  # a URL only when it set a new role password
        [ -f "$ETC/.database-made-here" ] || touch "$ETC/.database-made-here"
    fi
    new=$(mktemp)
    if [ -f "$ENV_FILE" ]; then
        # the operator's file stays as it is; only a new database URL is written into it
        if [ -n "$url" ]; then
            sed "s|^RADBILL_DATABASE_URL=.*|RADBILL_DATABASE_URL=$url|" "$ENV_FILE" > "$new"
        else
            cp "$ENV_FILE" "$new"
        fi
    else
        say "writing $ENV_FILE"
        cat > "$new" <<EOF
# radbill's settings (RADBILL_*), read by every radbill service and by \`radbill ...\`.
# Change one, then: systemctl restart radbill.target
RADBILL_DATA_DIR=$DATA
RADBILL_DATABASE_URL=$url
# Where gateways and browsers reach the web app (behind a TLS proxy)
RADBILL_PUBLIC_URL=http://127.0.0.1:8080
RADBILL_WEB_BIND=127.0.0.1:8080
# The address FreeRADIUS listens on for the NAS (0.0.0.0: every interface)
RADBILL_RADIUS_LISTEN=0.0.0.0
EOF
    fi
    put "$new" "$ENV_FILE" 0640 root:radbill; rm -f "$new"
}

as_radbill() {
    (set -a; . "$ENV_FILE"; set +a; cd "$DATA" && runuser -u radbill -- "$PREFIX/venv/bin/python" -m radbill.cli "$@")
}

schema_and_admin() {
    as_radbill db upgrade | sed 's/^/install: /'
    local admins
    admins=$(as_radbill user list --json | "$PREFIX/venv/bin/python" -c \
        'import json, sys; print(sum(1 for u in json.load(sys.stdin) if u.get("role") == "admin"))')
    if [ "$admins" = 0 ]; then
        local password
        password=$(random_secret)
        printf '%s\n%s\n' "$password" "$password" | as_radbill user create "$ADMIN" --role admin >/dev/null 2>&1 \
            || die "could not create the admin user $ADMIN"
        echo "=========================================================================="
        echo " web UI admin user: $ADMIN   password: $password"
        echo " (shown this once: write it down, then change it in the web UI)"
        echo "=========================================================================="
    fi
}

units() {
    local u
    for u in "${UNITS[@]}"; do put "$SRC/deploy/systemd/$u.service" "$UNIT_DIR/$u.service" 0644 root:root; done
    put "$SRC/deploy/systemd/radbill.target" "$UNIT_DIR/radbill.target" 0644 root:root
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --quiet radbill.target "${UNITS[@]/%/.service}"
        if [ "$CODE_CHANGED" = 1 ] || [ "$CHANGED" = 1 ]; then systemctl try-restart "${UNITS[@]/%/.service}"; fi
        systemctl start radbill.target
        say "services running: systemctl status radbill.target; logs: journalctl -u 'radbill-*'"
    else
        say "systemd is not running here: the units are in $UNIT_DIR; on boot: systemctl enable --now radbill.target"
    fi
}

uninstall() {
    local u
    if [ -d /run/systemd/system ]; then
        systemctl disable --now --quiet radbill.target "${UNITS[@]/%/.service}" 2>/dev/null || true
    fi
    for u in "${UNITS[@]}"; do rm -f "$UNIT_DIR/$u.service"; done
    rm -f "$UNIT_DIR/radbill.target" "$WRAPPER"
    [ ! -d /run/systemd/system ] || systemctl daemon-reload
    rm -rf "$PREFIX"
    say "services and code removed"
    if [ "$PURGE" = 0 ]; then
        say "kept: $DATA (data, secret key), $ENV_FILE, the database and the radbill user (--purge removes them)"
        return
    fi
    if [ -f "$ETC/.database-made-here" ]; then
        psql_admin -c "DROP DATABASE IF EXISTS \"$DB_NAME\"" >/dev/null
        psql_admin -c "DROP ROLE IF EXISTS \"$DB_USER\"" >/dev/null
        say "dropped the database $DB_NAME and the role $DB_USER"
    fi
    rm -rf "$DATA" "$ETC"
    if getent passwd radbill >/dev/null; then userdel radbill; fi
    say "purged $DATA, $ETC and the radbill user"
}

platform
if [ "$MODE" = check ]; then
    say "$DISTRO: supported (Python $PYTHON_WANTED, FreeRADIUS >= 3.2.5${BACKPORTS:+ from $BACKPORTS})"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "run as root"
if [ "$MODE" = uninstall ]; then uninstall; exit 0; fi

CHANGED=0 CODE_CHANGED=0
packages
user_and_dirs
code
venv
settings
schema_and_admin
units
say "done: radbill $("$PREFIX/venv/bin/python" -c 'import radbill; print(radbill.__version__)') on $DISTRO"
