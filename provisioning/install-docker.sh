#!/bin/sh
# Install and start Docker Engine on a Debian or Ubuntu host for rbottle. Idempotent:
# every step checks first and skips what is already done.
#
# Run as root, the script on stdin:
#   sudo -n sh -s -- LOGIN_USER [SOCKET] <install-docker.sh
#     LOGIN_USER  the user rbottle logs in as; added to the docker group
#     SOCKET      the engine's unix socket (default /var/run/docker.sock)
#
# Steps: install Debian's docker.io with apt-get when there is no dockerd; start the
# engine (`systemctl enable --now docker` when systemd runs the machine, else dockerd
# in the background, logging to /var/log/rbottle-dockerd.log); add LOGIN_USER to the
# docker group; check the engine with `docker info`. cloud-init/user-data.yaml does the
# same steps on machines rbottle creates.
#
# Output: progress lines "rbottle-provision: ..." on stdout. On failure the last line is
# "rbottle-provision: error: ..." and the exit status is 1. apt and systemctl output goes
# to /var/log/rbottle-provision.log.
set -eu

LOGIN_USER=${1:-}
SOCKET=${2:-/var/run/docker.sock}
START_TIMEOUT=60
PROVISION_LOG=/var/log/rbottle-provision.log
DOCKERD_LOG=/var/log/rbottle-dockerd.log
DOCKERD_PIDFILE=/var/run/docker.pid
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DEBIAN_FRONTEND=noninteractive
export PATH DEBIAN_FRONTEND

say() { printf 'rbottle-provision: %s\n' "$*"; }
die() {
    printf 'rbottle-provision: error: %s\n' "$*"
    exit 1
}

# The last apt error ("E: ...") or log line, to say why a step failed.
fail_with_log() {
    reason=$(grep '^E: ' "$PROVISION_LOG" 2>/dev/null | tail -n 1 || true)
    [ -n "$reason" ] || reason=$(tail -n 1 "$PROVISION_LOG" 2>/dev/null || true)
    die "$1${reason:+: $reason} (log: $PROVISION_LOG)"
}

engine_answers() {
    [ -S "$SOCKET" ] || return 1
    if command -v docker >/dev/null 2>&1; then
        timeout 20 docker -H "unix://$SOCKET" version >/dev/null 2>&1
    else
        timeout 20 curl -fsS --unix-socket "$SOCKET" http://localhost/_ping >/dev/null 2>&1
    fi
}

is_debian_like() {
    # shellcheck disable=SC1091 # the host's file, read in a subshell
    os=$(. /etc/os-release 2>/dev/null && printf '%s %s' "${ID:-}" "${ID_LIKE:-}") || os=""
    case " $os " in
        *" debian "* | *" ubuntu "*) return 0 ;;
        *) return 1 ;;
    esac
}

apt_get() {
    apt-get -q -o DPkg::Lock::Timeout=300 "$@" >>"$PROVISION_LOG" 2>&1
}

install_engine() {
    command -v apt-get >/dev/null 2>&1 && is_debian_like ||
        die "rbottle installs Docker on Debian and Ubuntu only (no apt-get here); install Docker Engine yourself"
    packages="docker.io ca-certificates"
    # With AppArmor on, dockerd needs apparmor_parser for its container profile.
    if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || true)" = Y ]; then
        packages="$packages apparmor"
    fi
    say "installing Docker Engine: apt-get install docker.io (log: $PROVISION_LOG)"
    apt_get update || fail_with_log "apt-get update failed"
    # shellcheck disable=SC2086 # a list of package names
    apt_get install -y --no-install-recommends $packages ||
        fail_with_log "apt-get install docker.io failed"
    command -v dockerd >/dev/null 2>&1 || die "docker.io is installed but there is no dockerd"
    say "installed $(dockerd --version 2>/dev/null || echo dockerd)"
}

ensure_docker_group() {
    getent group docker >/dev/null 2>&1 && return 0
    say "creating the docker group"
    groupadd --system docker
}

dockerd_running() {
    [ -f "$DOCKERD_PIDFILE" ] && kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null
}

start_engine() {
    if [ -d /run/systemd/system ]; then
        say "starting Docker Engine: systemctl enable --now docker"
        systemctl enable --now docker >>"$PROVISION_LOG" 2>&1 ||
            fail_with_log "systemctl could not start docker (see journalctl -u docker)"
        log_hint="journalctl -u docker"
    elif dockerd_running; then
        say "dockerd is running already; waiting for it to answer"
        log_hint=$DOCKERD_LOG
    else
        say "starting dockerd (no systemd here; log: $DOCKERD_LOG)"
        case $SOCKET in
            /var/run/docker.sock | /run/docker.sock) set -- ;;
            *) set -- -H "unix://$SOCKET" ;;
        esac
        setsid dockerd "$@" </dev/null >>"$DOCKERD_LOG" 2>&1 &
        log_hint=$DOCKERD_LOG
    fi
    waited=0
    until engine_answers; do
        if [ "$waited" -ge "$START_TIMEOUT" ]; then
            die "Docker Engine did not answer on $SOCKET within ${START_TIMEOUT}s (log: $log_hint)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

add_user_to_docker_group() {
    [ "$(id -u "$LOGIN_USER")" != 0 ] || return 0
    if id -nG "$LOGIN_USER" | tr ' ' '\n' | grep -qx docker; then
        return 0
    fi
    say "adding $LOGIN_USER to the docker group"
    usermod -aG docker "$LOGIN_USER"
}

check_user_access() {
    runuser -u "$LOGIN_USER" -- test -w "$SOCKET" && return 0
    die "$LOGIN_USER may not use $SOCKET ($(stat -c '%U:%G %A' "$SOCKET")): restart dockerd so the socket belongs to group docker"
}

[ "$(id -u)" = 0 ] || die "install-docker.sh must run as root (sudo -n sh -s -- USER SOCKET)"
[ -n "$LOGIN_USER" ] || die "usage: install-docker.sh LOGIN_USER [SOCKET]"
id "$LOGIN_USER" >/dev/null 2>&1 || die "there is no user $LOGIN_USER on this host"
case $SOCKET in
    /*) ;;
    *) die "the Docker socket must be an absolute path, not $SOCKET" ;;
esac
printf '\n== %s install-docker.sh %s %s\n' "$(date -u +%FT%TZ)" "$LOGIN_USER" "$SOCKET" >>"$PROVISION_LOG"

say "checking Docker Engine on $SOCKET"
if engine_answers; then
    say "Docker Engine answers on $SOCKET"
else
    command -v dockerd >/dev/null 2>&1 || install_engine
    ensure_docker_group
    start_engine
fi
add_user_to_docker_group
check_user_access
version=$(docker -H "unix://$SOCKET" info --format '{{.ServerVersion}}' 2>>"$PROVISION_LOG") ||
    fail_with_log "docker info failed"
say "Docker Engine $version is running on $SOCKET"
