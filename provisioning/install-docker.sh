#!/bin/sh
# Install and start Docker Engine on a Debian or Ubuntu host for rbottle. Idempotent:
# every step checks first and skips what is already done.
#
# Run as root, the script on stdin:
#   sudo -n sh -s -- LOGIN_USER [SOCKET] [--allow-old-engine] <install-docker.sh
#     LOGIN_USER  the user rbottle logs in as; added to the docker group
#     SOCKET      the engine's unix socket (default /var/run/docker.sock)
#     --allow-old-engine  accept an engine older than 25.0.5 (see below); rbottle
#                 passes it only when the user asked for it explicitly
#
# Steps: install Debian's docker.io (and docker-cli, its own package since Debian 13)
# with apt-get when there is no dockerd; start the engine (`systemctl enable --now
# docker` when systemd runs the machine, else dockerd in the background, logging to
# /var/log/rbottle-dockerd.log); check that it is Docker Engine 25.0.5 or newer; install
# gVisor (Debian's runsc) when the distribution has it and register it with the engine;
# add LOGIN_USER to the docker group; check the engine with `docker info`.
# cloud-init/user-data.yaml does the same steps on machines rbottle creates.
#
# Engine version: Docker before 25.0.5 lets containers on --internal networks resolve
# names through the host's DNS (CVE-2024-29018): a way out for a bottle. Debian 13
# (trixie) ships docker.io 26.1.5; Debian 12 (bookworm) ships 20.10. Where apt would
# install an older engine, or an older one is installed, nothing is installed (or
# started) and the script fails, saying so; the fix is Debian 13 or Docker's own
# packages (docs.docker.com/engine/install). --allow-old-engine goes on with a warning.
#
# gVisor: `runsc` is registered as the runtime "runsc" in /etc/docker/daemon.json
# (`runsc install --clobber=false`: other settings are kept, the old file is kept as
# daemon.json~, an existing "runsc" entry is left as it is), then the engine reloads
# its configuration. Before that, `runsc --network=none do true` must run here, else runsc
# is not registered and bottles use runc. runsc releases before 20240807 (Debian 13 has
# 20240729) cannot use gVisor's own network stack on kernels that namespace
# net.core.rmem_default (Linux 6.11 and later, Debian 13's 6.12 included): they take
# every network namespace for the host's and refuse to start (google/gvisor#10704).
# There runsc is registered with --network=host: the sandbox's sockets are the host
# kernel's, in the network namespace Docker made for the container (the bottle's
# networks, --internal and DNS behave as under runc), instead of gVisor's own network
# stack; every other system call still goes to gVisor. No runsc package (Ubuntu) is
# not an error: bottles then run on runc.
#
# Output: progress lines "rbottle-provision: ..." on stdout. On failure the last line is
# "rbottle-provision: error: ..." and the exit status is 1. apt and systemctl output goes
# to /var/log/rbottle-provision.log.
set -eu

LOGIN_USER=${1:-}
SOCKET=${2:-/var/run/docker.sock}
ALLOW_OLD_ENGINE=${3:-}
START_TIMEOUT=60
# CVE-2024-29018 (DNS from --internal networks) is fixed in 25.0.5.
SAFE_ENGINE=25.0.5
DAEMON_JSON=/etc/docker/daemon.json
# The first gVisor release that tells a container's network namespace from the host's
# on Linux 6.11+ (google/gvisor#10704).
RUNSC_NETNS_FIX=20240807
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
    apt_get update || fail_with_log "apt-get update failed"
    candidate=$(apt_candidate docker.io)
    [ -n "$candidate" ] ||
        die "this distribution has no docker.io package; install Docker Engine $SAFE_ENGINE or newer yourself (docs.docker.com/engine/install)"
    if engine_too_old "$candidate"; then
        [ -n "$ALLOW_OLD_ENGINE" ] || die "$(too_old_message "$candidate" "$(distro_name)'s docker.io")"
        say "warning: installing docker.io $candidate, older than $SAFE_ENGINE (CVE-2024-29018), as asked"
    fi
    packages="docker.io ca-certificates"
    # Debian 13 moved the docker command to its own package (only recommended).
    [ -z "$(apt_candidate docker-cli)" ] || packages="$packages docker-cli"
    # With AppArmor on, dockerd needs apparmor_parser for its container profile.
    if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || true)" = Y ]; then
        packages="$packages apparmor"
    fi
    say "installing Docker Engine: apt-get install docker.io $candidate (log: $PROVISION_LOG)"
    # shellcheck disable=SC2086 # a list of package names
    apt_get install -y --no-install-recommends $packages ||
        fail_with_log "apt-get install docker.io failed"
    command -v dockerd >/dev/null 2>&1 || die "docker.io is installed but there is no dockerd"
    say "installed $(dockerd --version 2>/dev/null || echo dockerd)"
}

# The version apt would install of package $1, or nothing when there is none.
apt_candidate() {
    candidate=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1)
    [ "$candidate" = "(none)" ] || printf '%s' "$candidate"
}

distro_name() {
    # shellcheck disable=SC1091 # the host's file, read in a subshell
    (. /etc/os-release 2>/dev/null && printf '%s' "${PRETTY_NAME:-this distribution}") ||
        printf 'this distribution'
}

# Is Docker version $1 ("20.10.24+dfsg1", "26.1.5+dfsg1-9+deb13u1", "27.3.1") older than
# $SAFE_ENGINE? The upstream version is compared; a distribution's own revision is not.
engine_too_old() {
    upstream=$(printf '%s' "$1" | sed -e 's/^[0-9]*://' -e 's/[-+~].*//')
    dpkg --compare-versions "$upstream" lt "$SAFE_ENGINE"
}

too_old_message() {
    printf '%s %s is too old: Docker Engine before %s lets containers on internal networks resolve names through the host (CVE-2024-29018), a way out of a bottle. Use Debian 13 (trixie) or newer, or install Docker Engine %s or newer from Docker'"'"'s packages (docs.docker.com/engine/install), then run rbottle again' \
        "$2" "$1" "$SAFE_ENGINE" "$SAFE_ENGINE"
}

# The version of the dockerd installed here ("Docker version 26.1.5+dfsg1, build ...").
installed_engine_version() {
    dockerd --version 2>/dev/null | sed -n 's/^Docker version \([^,]*\).*/\1/p'
}

# The engine on $SOCKET, or the installed dockerd, must be $SAFE_ENGINE or newer.
check_engine_version() {
    version=$1
    [ -n "$version" ] || return 0
    engine_too_old "$version" || return 0
    [ -n "$ALLOW_OLD_ENGINE" ] || die "$(too_old_message "$version" "Docker Engine")"
    say "warning: Docker Engine $version is older than $SAFE_ENGINE (CVE-2024-29018); going on as asked"
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

# YYYYMMDD of the installed runsc ("runsc version 0.0~20240729.0", "release-20240807.0").
runsc_release() {
    runsc --version 2>/dev/null | head -n 1 | sed -n 's/.*\([0-9]\{8\}\).*/\1/p'
}

# Does runsc take every network namespace here for the host's (google/gvisor#10704)?
runsc_netstack_broken() {
    release=$(runsc_release)
    [ -n "$release" ] && [ "$release" -lt "$RUNSC_NETNS_FIX" ] || return 1
    unshare --net test -e /proc/sys/net/core/rmem_default 2>/dev/null
}

runsc_registered() {
    [ -f "$DAEMON_JSON" ] && grep -q '"runsc"[[:space:]]*:' "$DAEMON_JSON"
}

# Install runsc (when the distribution has it) and register it; sets GVISOR_CHANGED=1
# when daemon.json was written. Only apt and daemon.json errors are fatal: without
# gVisor, bottles use runc.
GVISOR_CHANGED=0
setup_gvisor() {
    if runsc_registered; then
        return 0
    fi
    if ! command -v runsc >/dev/null 2>&1; then
        if [ -z "$(apt_candidate runsc)" ]; then
            apt_get update || fail_with_log "apt-get update failed"
        fi
        if [ -z "$(apt_candidate runsc)" ]; then
            say "no runsc package on $(distro_name): bottles run on runc, not gVisor"
            return 0
        fi
        say "installing gVisor: apt-get install runsc (log: $PROVISION_LOG)"
        apt_get install -y --no-install-recommends runsc ||
            fail_with_log "apt-get install runsc failed"
    fi
    set --
    if runsc_netstack_broken; then
        say "runsc $(runsc_release) cannot use gVisor's network stack on Linux $(uname -r) (google/gvisor#10704): registering it with --network=host (the container's own network namespace)"
        set -- --network=host
    fi
    # The platform (systrap by default) must work here; networking is Docker's part.
    if ! probe=$(runsc --network=none do true 2>&1); then
        printf '%s\n' "$probe" >>"$PROVISION_LOG"
        say "gVisor does not run on this machine ($(printf '%s' "$probe" | tail -n 1)): runsc not registered, bottles run on runc"
        return 0
    fi
    say "registering gVisor with Docker Engine: runtime runsc in $DAEMON_JSON"
    if [ "$#" -gt 0 ]; then
        runsc install --clobber=false -- "$@" >>"$PROVISION_LOG" 2>&1 ||
            fail_with_log "runsc install could not update $DAEMON_JSON (is it valid JSON?)"
    else
        runsc install --clobber=false >>"$PROVISION_LOG" 2>&1 ||
            fail_with_log "runsc install could not update $DAEMON_JSON (is it valid JSON?)"
    fi
    GVISOR_CHANGED=1
}

engine_has_runsc() {
    docker -H "unix://$SOCKET" info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null |
        tr ' ' '\n' | grep -qx runsc
}

# Make the running engine read daemon.json again (runtimes are reloadable).
reload_engine() {
    if [ -d /run/systemd/system ]; then
        systemctl reload docker >>"$PROVISION_LOG" 2>&1 ||
            fail_with_log "systemctl reload docker failed"
    elif dockerd_running; then
        kill -HUP "$(cat "$DOCKERD_PIDFILE")"
    else
        die "cannot reload Docker Engine: no systemd and no $DOCKERD_PIDFILE"
    fi
    waited=0
    until engine_has_runsc; do
        if [ "$waited" -ge 20 ]; then
            die "Docker Engine did not pick up the runsc runtime from $DAEMON_JSON (see its log)"
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
[ -n "$LOGIN_USER" ] || die "usage: install-docker.sh LOGIN_USER [SOCKET] [--allow-old-engine]"
case $ALLOW_OLD_ENGINE in
    "" | --allow-old-engine) ;;
    *) die "usage: install-docker.sh LOGIN_USER [SOCKET] [--allow-old-engine], not $ALLOW_OLD_ENGINE" ;;
esac
id "$LOGIN_USER" >/dev/null 2>&1 || die "there is no user $LOGIN_USER on this host"
case $SOCKET in
    /*) ;;
    *) die "the Docker socket must be an absolute path, not $SOCKET" ;;
esac
printf '\n== %s install-docker.sh %s %s\n' "$(date -u +%FT%TZ)" "$LOGIN_USER" "$SOCKET" >>"$PROVISION_LOG"

say "checking Docker Engine on $SOCKET"
if engine_answers; then
    say "Docker Engine answers on $SOCKET"
    check_engine_version "$(docker -H "unix://$SOCKET" version --format '{{.Server.Version}}' 2>/dev/null || true)"
else
    if command -v dockerd >/dev/null 2>&1; then
        # Installed by someone else: refuse an old one before changing anything.
        check_engine_version "$(installed_engine_version)"
    else
        install_engine
    fi
    ensure_docker_group
    start_engine
fi
setup_gvisor
if [ "$GVISOR_CHANGED" = 1 ]; then
    reload_engine
fi
add_user_to_docker_group
check_user_access
version=$(docker -H "unix://$SOCKET" info --format '{{.ServerVersion}}' 2>>"$PROVISION_LOG") ||
    fail_with_log "docker info failed"
check_engine_version "$version"
runtimes=$(docker -H "unix://$SOCKET" info --format '{{range $name, $_ := .Runtimes}}{{$name}} {{end}}' 2>/dev/null |
    tr ' ' '\n' | grep -v '^io\.containerd\.' | grep . | sort | tr '\n' ' ' | sed 's/ $//' || true)
say "Docker Engine $version is running on $SOCKET${runtimes:+ (runtimes: $runtimes)}"
