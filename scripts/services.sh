# Sourced by scripts/test: makes sure the services the tests talk to are up on 127.0.0.1.
# Each ensure_* uses a running service, starts an installed one, installs a missing one (apt),
# and otherwise stops the test run with the reason. Nothing is ever skipped silently.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $* (run as root or install sudo)"; fi
}

apt_install() {
    say "installing $* from Debian's packages"
    if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq || die "apt-get update failed"; APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2; shift 2
    for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "$what is still not answering after ${seconds}s"
}

postgres_answers() { psql "${TEST_POSTGRES_URL}" -Atc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
    export TEST_POSTGRES_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
    command -v psql >/dev/null || apt_install postgresql-client
    postgres_answers && return 0
    if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
        apt_install postgresql
        local installed=1
    fi
    local version; version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -n "${installed:-}" ]; then
        # A fresh Debian cluster asks for passwords over TCP; the tests connect as postgres
        # without one, as on the development machines (trust on loopback only).
        local hba="/etc/postgresql/$version/main/pg_hba.conf"
        as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    say "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    [ -n "${installed:-}" ] && as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
    wait_for 30 "PostgreSQL at $TEST_POSTGRES_URL" postgres_answers
}

redis_answers() {
    if command -v redis-cli >/dev/null; then redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG
    else (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG); fi
}

ensure_redis() {
    export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
    redis_answers && return 0
    command -v redis-server >/dev/null || apt_install redis-server
    say "starting Redis"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/nezuko-test.log
    wait_for 15 "Redis at 127.0.0.1:6379" redis_answers
}

# The vault's interoperability test decrypts in Python with the `cryptography` package, as the
# original platform did.
ensure_python_cryptography() {
    command -v python3 >/dev/null || apt_install python3
    python3 -c 'import cryptography.fernet' 2>/dev/null && return 0
    say "installing Python's cryptography package"
    python3 -m pip install --quiet cryptography 2>/dev/null || apt_install python3-cryptography
    python3 -c 'import cryptography.fernet' || die "Python's cryptography package is not importable"
}

# The dashboard's browser tests drive Debian's Chromium (tests/it/browser).
ensure_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    apt_install chromium
    [ -x /usr/bin/chromium ] || die "Chromium is required for the browser tests and could not be installed"
}

# axe-core (Deque's accessibility engine, from the npm registry) for the browser tests, pinned by
# scripts/axe/package-lock.json and installed under target/.
ensure_axe() {
    local dir=target/axe
    [ -f "$dir/node_modules/axe-core/axe.min.js" ] && return 0
    command -v npm >/dev/null || apt_install npm
    mkdir -p "$dir"
    cp scripts/axe/package.json scripts/axe/package-lock.json "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --silent) ||
        die "axe-core is required for the browser tests and could not be installed with npm"
}

# Databases left behind by test runs that were killed mid-way.
drop_stale_test_databases() {
    psql "$TEST_POSTGRES_URL" -Atc "select datname from pg_database where datname like 'nezuko_test_%'" |
        while read -r name; do psql "$TEST_POSTGRES_URL" -qc "drop database if exists \"$name\" with (force)"; done
}
