#!/usr/bin/env bash
# The body of `make run`: web (gunicorn) + workers (django-q2 qcluster), production-shaped,
# on one machine. Idempotent: safe to run again and again.
#
#   1. ensure .venv with the project installed (re-installs only when pyproject.toml changed)
#   2. write .env with random keys on the very first run (keys never overwritten); a SITE_URL
#      given in the environment is written into it, replacing a different one (and said so)
#   3. migrate, collectstatic, ensure the 'admin' superuser, setup_schedules (if it exists)
#   4. run gunicorn and qcluster in the foreground; Ctrl-C / SIGTERM stops both; if either
#      dies the other is stopped and this script exits non-zero.
#
# TOKENADMIN_DEMO=1 (`make demo`): the same in demo mode (see tokenadmin/settings.py): installs
# the `demo` extra, uses demo.sqlite3, and runs `manage.py demo_setup` (demo provider, connection,
# a new admin password printed on every start) instead of ensure_admin.
#
# Environment (all optional): SITE_URL (the address people and providers use; written to .env),
# PORT (default: SITE_URL's port, else 8000), WEB_CONCURRENCY (2 gunicorn workers), PYTHON (python
# used to create .venv), STOP_TIMEOUT (seconds allowed for a graceful stop before SIGKILL, 35;
# gunicorn's own graceful timeout is 30), plus everything Django reads (.env is loaded by
# tokenadmin/settings.py itself; real environment variables win over .env).
# Extra gunicorn flags: GUNICORN_CMD_ARGS (read by gunicorn itself).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
STOP_TIMEOUT="${STOP_TIMEOUT:-35}"
VENV=".venv"
PY="$VENV/bin/python"

log() { printf 'run: %s\n' "$*"; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

# --- 1. virtualenv ------------------------------------------------------------------------------
pick_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        # `command -v` alone is not enough: a pyenv shim exists even when the version is absent.
        if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$PY" ]]; then
    base_python="$(pick_python)" || die "need Python >= 3.11 (python3.11 or python3) to create $VENV"
    log "creating $VENV with $base_python"
    "$base_python" -m venv "$VENV" || die "'$base_python -m venv' failed (on Debian/Ubuntu: apt-get install python3.11-venv)"
fi

DEMO=""
[[ "${TOKENADMIN_DEMO:-}" =~ ^(1|true|yes|on)$ ]] && DEMO=1
pyproject_hash="$("$PY" -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest()[:16])')"
stamp="$VENV/.installed-${DEMO:+demo-}$pyproject_hash"
# A dev install (make test) includes the demo extra's django-oauth-toolkit.
if [[ ! -e "$stamp" && ! -e "$VENV/.installed-dev-$pyproject_hash" ]]; then
    log "installing tokenadmin${DEMO:+ with the demo extra} into $VENV (pyproject.toml changed or first run)"
    "$PY" -m pip install --quiet --disable-pip-version-check -e ".${DEMO:+[demo]}"
    # Drop stamps of older pyproject versions (runtime only; the Makefile's dev stamps stay).
    find "$VENV" -maxdepth 1 -name '.installed-*' ! -name '.installed-dev-*' -delete
    touch "$stamp"
fi

# --- 2..3. configuration, database, static files, admin, schedules ------------------------------
"$PY" scripts/write_env.py
# The port follows SITE_URL unless PORT is set, so the address in the links is the one served.
bind="$("$PY" scripts/write_env.py --print-bind)"
PORT="${bind%% *}"
site_url="${bind#* }"
export PORT
"$PY" manage.py migrate --noinput
"$PY" manage.py collectstatic --noinput --verbosity 0
[[ -n "$DEMO" ]] || "$PY" manage.py ensure_admin
if "$PY" manage.py help setup_schedules >/dev/null 2>&1; then
    "$PY" manage.py setup_schedules
else
    log "manage.py setup_schedules not available yet; skipping"
fi
[[ -z "$DEMO" ]] || "$PY" manage.py demo_setup

# --- 4. web + workers ---------------------------------------------------------------------------
# Each child runs in its own session/process group (setsid) so that a terminal Ctrl-C reaches
# only this script, which then stops the children in order; and so that a last-resort SIGKILL
# can take a whole process tree (gunicorn workers, qcluster's sentinel/workers) with it.
SETSID=()
if command -v setsid >/dev/null 2>&1; then
    SETSID=(setsid)
fi

web_pid=""
worker_pid=""

start_children() {
    "${SETSID[@]}" "$VENV/bin/gunicorn" tokenadmin.wsgi:application \
        --bind "0.0.0.0:$PORT" \
        --workers "$WEB_CONCURRENCY" \
        --worker-class gthread --threads 4 \
        --logger-class tokenadmin.logsafety.RedactingGunicornLogger \
        --access-logfile - --error-logfile - &
    web_pid=$!
    "${SETSID[@]}" "$PY" manage.py qcluster &
    worker_pid=$!
}

alive() { [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null; }

# Send $1 to a child; with setsid the child leads its own process group, so KILL goes to the group.
signal_child() {
    local sig=$1 pid=$2
    alive "$pid" || return 0
    if [[ "$sig" == KILL && ${#SETSID[@]} -gt 0 ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true
    else
        kill "-$sig" "$pid" 2>/dev/null || true
    fi
}

stop_children() {
    local deadline=$((SECONDS + STOP_TIMEOUT))
    signal_child TERM "$web_pid"
    signal_child TERM "$worker_pid"
    while { alive "$web_pid" || alive "$worker_pid"; } && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$web_pid" || alive "$worker_pid"; then
        log "still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        signal_child KILL "$web_pid"
        signal_child KILL "$worker_pid"
    fi
    wait "$web_pid" "$worker_pid" 2>/dev/null || true
}

stop_requested=""
trap 'stop_requested=INT' INT
trap 'stop_requested=TERM' TERM
# Whatever happens (even an error in this script), never leave orphans behind.
trap 'stop_children' EXIT

start_children
log "web (gunicorn, pid $web_pid) and workers (qcluster, pid $worker_pid) started"
log "listening on port $PORT; open $site_url/ (admin: $site_url/admin/); Ctrl-C to stop"

# `wait -n` returns when either child exits, or at once when a trapped signal arrives.
set +e
wait -n "$web_pid" "$worker_pid"
first_rc=$?
set -e

if [[ -n "$stop_requested" ]]; then
    log "SIG$stop_requested received; stopping web and workers"
    stop_children
    trap - EXIT
    log "stopped"
    exit 0
fi

if ! alive "$web_pid"; then
    died="web (gunicorn)"
else
    died="workers (qcluster)"
fi
log "$died exited with status $first_rc; stopping the rest"
stop_children
trap - EXIT
exit $((first_rc == 0 ? 1 : first_rc))
