#!/usr/bin/env bash
# Test harness setup: Debian packages, a running Docker engine, and the pinned
# images seeded into it without any container registry.
#
# Idempotent and quick on a second run: every step checks first and skips what
# is already there. Run as root (CI: `.ci/run` -> `make setup`; developers:
# `make setup`, which uses sudo). No stdin is read.
#
# Images made here (references come from remotebottle/resources/pins.env, the
# one source of truth):
#   $BASE_IMAGE        debootstrap --variant=minbase bookworm | docker import
#                      (the project's own images build FROM it)
#   debian:trixie-slim debootstrap --variant=minbase trixie | docker import
#                      (Debian 13: what the fake VMs build FROM, as the VMs rbottle
#                      provisions or creates run Debian 13)
#   $GITLEAKS_IMAGE    go install gitleaks, wrapped like upstream's image
#   $PIPELOCK_IMAGE    pipelock-image.sh: pulled, or built from the pinned release source
#   rbottle-test/fakevm:latest       sshd + dockerd (Docker-in-Docker) + runsc, see FAKEVM.md
#   rbottle-test/fakevm-bare:latest  sshd only (provisioning tests)
#   rbottle-test/fakevm-bare:bookworm  the same on Debian 12 (an engine too old to accept)
#
# Environment knobs (all optional):
#   RB_HARNESS_DEBIAN_MIRROR     Debian mirror URL (default: the one apt uses here)
#   RB_HARNESS_SECURITY_MIRROR   Debian security mirror URL (default: the one apt uses here)
#   RB_HARNESS_CA_BUNDLE         CA bundle trusted by image builds (default: host bundle)
#   RB_HARNESS_PIPELOCK_BIN      a pipelock binary of the pinned release to wrap as
#                                $PIPELOCK_IMAGE instead of building it
#   RB_HARNESS_PIPELOCK_SRC      pipelock's release source tarball (default:
#                                ../shared/vendor/pipelock-<version>.tar.gz beside the checkout)
#   RB_HARNESS_STRICT=1          a pipelock that cannot be had is an error (CI sets it;
#                                default: a loud warning, recorded in
#                                /var/lib/rbottle-harness/pipelock-unavailable, and
#                                everything else is still set up)
#   RB_HARNESS_DOCKERD_LOG       dockerd log file (default /var/log/rbottle-dockerd.log)
#   RB_HARNESS_FAKEVM_IMAGE      tag of the fake VM (default rbottle-test/fakevm:latest)
#   RB_HARNESS_FAKEVM_BARE_IMAGE tag of the bare fake VM (default rbottle-test/fakevm-bare:latest);
#                                with these two, a changed fake VM can be built and tried
#                                beside the one other tests use (tests read
#                                RB_TEST_FAKEVM_IMAGE / RB_TEST_FAKEVM_BARE_IMAGE)
set -euo pipefail

HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HARNESS_DIR/../.." && pwd)"
PINS_FILE="$REPO_ROOT/remotebottle/resources/pins.env"
STATE_DIR=/var/lib/rbottle-harness
CACHE_DIR=/var/cache/rbottle-harness
DOCKERD_LOG="${RB_HARNESS_DOCKERD_LOG:-/var/log/rbottle-dockerd.log}"
CA_BUNDLE="${RB_HARNESS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
FAKEVM_IMAGE="${RB_HARNESS_FAKEVM_IMAGE:-rbottle-test/fakevm:latest}"
FAKEVM_BARE_IMAGE="${RB_HARNESS_FAKEVM_BARE_IMAGE:-rbottle-test/fakevm-bare:latest}"
# The fake VMs run the Debian release that VMs rbottle provisions or creates get:
# Debian 13 (trixie), whose docker.io (26.1.5) has the fix for CVE-2024-29018.
FAKEVM_SUITE=trixie
FAKEVM_BASE_IMAGE=debian:trixie-slim
# A bare fake VM on the project's older base (Debian 12, docker.io 20.10), for the
# provisioning test that refuses an engine older than 25.0.5.
FAKEVM_OLD_BARE_IMAGE=rbottle-test/fakevm-bare:bookworm
LABEL_KEY=org.remotebottle.harness.hash

# The legacy builder talks to any engine (bookworm's dockerd 20.10 included)
# and needs no buildx plugin. The CLI's deprecation notice is expected.
export DOCKER_BUILDKIT=0
export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

T0=$SECONDS
say() { printf 'harness: %s\n' "$*"; }
warn() { printf 'harness: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'harness: ERROR: %s\n' "$*" >&2
    exit 1
}
# shellcheck disable=SC2154 # rc is set inside the trap string
trap 'rc=$?; printf "harness: ERROR: command failed (exit %s) at setup.sh line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

WORK=""
cleanup() {
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "run as root (make setup uses sudo)"
[ -r "$PINS_FILE" ] || die "missing $PINS_FILE"

# pins.env is KEY=VALUE only.
set -a
# shellcheck source=/dev/null
. "$PINS_FILE"
set +a
for key in BASE_IMAGE PIPELOCK_IMAGE PIPELOCK_GO_MODULE PIPELOCK_GO_VERSION \
    GITLEAKS_IMAGE GITLEAKS_GO_MODULE GITLEAKS_GO_VERSION; do
    [ -n "${!key:-}" ] || die "$PINS_FILE has no $key"
done

mkdir -p "$STATE_DIR" "$CACHE_DIR"
WORK="$(mktemp -d /var/tmp/rbottle-harness.XXXXXX)"

# ---------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------
PACKAGES=(
    docker.io          # dockerd 20.10 + containerd + runc (+ tini)
    openssh-server     # sshd for fake VMs is in the images; host one for local tests
    openssh-client
    debootstrap        # builds $BASE_IMAGE
    debian-archive-keyring
    wget               # debootstrap downloads with it
    git
    iptables           # dockerd networking
    iproute2
    procps
    tmux               # TTY tests
    nodejs             # runs the credential proxy's policy in fast tests
    ca-certificates
    curl
    xz-utils
)

pkg_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
    done
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
}

apt_install() {
    apt_update_once
    say "installing Debian packages: $*"
    apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 || {
        tail -n 30 "$WORK/apt.log" >&2
        die "apt-get install $* failed"
    }
}

mapfile -t missing < <(pkg_missing "${PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
else
    say "Debian packages present"
fi

# Go: prefer the toolchain already on the machine (/usr/local/go); fall back
# to Debian's golang-go (bookworm's 1.19 is too old for current gitleaks and
# pipelock; the build step then says so).
GO="$(command -v go || true)"
if [ -z "$GO" ]; then
    apt_install golang-go
    GO="$(command -v go)" || die "no Go toolchain after installing golang-go"
fi
say "go: $("$GO" version)"

# ---------------------------------------------------------------------------
# 2. Docker engine
# ---------------------------------------------------------------------------
engine_up() { docker info >/dev/null 2>&1; }

wait_engine() {
    local limit=$1 i
    for ((i = 0; i < limit; i++)); do
        engine_up && return 0
        # Give up early when the daemon we started has died.
        if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then
            return 1
        fi
        sleep 1
    done
    return 1
}

# dockerd needs a working iptables; with an nf_tables backend that the kernel
# lacks, the legacy backend usually works.
ensure_iptables() {
    if iptables -w -L -n >/dev/null 2>&1; then
        return 0
    fi
    if command -v iptables-legacy >/dev/null && iptables-legacy -w -L -n >/dev/null 2>&1; then
        warn "iptables (nft) does not work here; switching to iptables-legacy"
        update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null
        update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null || true
        return 0
    fi
    warn "iptables does not work; starting dockerd with --iptables=false (no published ports)"
    return 1
}

start_dockerd() {
    local extra=("$@") pid
    : >>"$DOCKERD_LOG"
    printf '\n=== %s harness: dockerd %s\n' "$(date -Is)" "${extra[*]}" >>"$DOCKERD_LOG"
    # setsid: the daemon outlives this script, make, and the CI step's process group.
    setsid dockerd "${extra[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    pid=$!
    if wait_engine 60 "$pid"; then
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    sleep 2
    return 1
}

if engine_up; then
    say "Docker engine answers"
else
    if [ -S /var/run/docker.sock ] && pgrep -x dockerd >/dev/null; then
        say "dockerd is running but not answering yet; waiting"
        wait_engine 60 || die "dockerd runs but does not answer; see $DOCKERD_LOG"
    elif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && systemctl start docker 2>/dev/null && wait_engine 60; then
        say "started docker.service"
    else
        say "starting dockerd (log: $DOCKERD_LOG)"
        opts=()
        ensure_iptables || opts+=(--iptables=false)
        if ! start_dockerd "${opts[@]}"; then
            # overlay2 needs a backing filesystem that supports it (not overlayfs);
            # vfs always works, at the cost of disk and speed.
            warn "dockerd did not come up with the default storage driver; retrying with vfs"
            start_dockerd "${opts[@]}" --storage-driver=vfs ||
                die "dockerd did not start; last lines of $DOCKERD_LOG: $(tail -n 5 "$DOCKERD_LOG" | tr '\n' ' ')"
        fi
    fi
    say "Docker engine up: $(docker info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}')"
fi

# ---------------------------------------------------------------------------
# Helpers for images
# ---------------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

image_label() { docker image inspect -f "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true; }

# Hash of the harness inputs an image is built from; a change rebuilds it.
inputs_hash() { cat "$@" | sha256sum | cut -c1-16; }

# Build contexts trust the host CA bundle (the outbound gateway inspects TLS):
#   host-ca-bundle.crt  the whole bundle, for tools before ca-certificates exists
#   host-cas/*.crt      only the certificates Debian's ca-certificates lacks, for
#                       /usr/local/share/ca-certificates, so update-ca-certificates
#                       keeps them in the bundle it regenerates
# TLS verification is never turned off.
[ -s "$CA_BUNDLE" ] || die "CA bundle $CA_BUNDLE missing or empty"
HOST_CAS="$WORK/host-cas"
split_host_cas() {
    local known="$WORK/known-ca.txt" n=0 f
    : >"$known"
    for f in /usr/share/ca-certificates/mozilla/*.crt; do
        [ -e "$f" ] || continue
        grep -v -- '-----' "$f" | tr -d ' \r\n' >>"$known"
        echo >>"$known"
    done
    awk -v dir="$WORK/split" 'BEGIN { system("mkdir -p " dir) }
        /-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s/%04d.crt", dir, n) }
        f { print > f }
        /-----END CERTIFICATE-----/ { close(f); f = "" }' "$CA_BUNDLE"
    for f in "$WORK"/split/*.crt; do
        [ -e "$f" ] || continue
        if ! grep -qxF -- "$(grep -v -- '-----' "$f" | tr -d ' \r\n')" "$known"; then
            n=$((n + 1))
            cp "$f" "$HOST_CAS/rbottle-host-ca-$n.crt"
        fi
    done
    echo "$n"
}

# Made once, on the first build that needs it (a quick second run builds nothing).
prepare_ca_material() {
    [ -e "$HOST_CAS/.ready" ] && return 0
    mkdir -p "$HOST_CAS"
    local n
    n="$(split_host_cas)"
    say "image builds trust $CA_BUNDLE ($n certificate(s) beyond Debian's ca-certificates)" >&2
    : >"$HOST_CAS/.ready"
}

# new_context NAME FILE...: a fresh build context with the CA material and FILEs.
new_context() {
    local ctx="$WORK/ctx-$1"
    shift
    prepare_ca_material
    rm -rf "$ctx"
    mkdir -p "$ctx"
    cp "$CA_BUNDLE" "$ctx/host-ca-bundle.crt"
    mkdir -p "$ctx/host-cas"
    cp "$HOST_CAS"/*.crt "$ctx/host-cas/" 2>/dev/null || true
    [ "$#" -eq 0 ] || cp "$@" "$ctx/"
    echo "$ctx"
}

# build TAG CONTEXT [docker build args...]
build() {
    local tag=$1 ctx=$2
    shift 2
    if ! docker build --pull=false -q -t "$tag" "$@" "$ctx" >"$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log" >&2
        die "docker build of $tag failed"
    fi
}

# ---------------------------------------------------------------------------
# 3a. Base image: debootstrap + docker import
# ---------------------------------------------------------------------------
# The Debian mirrors apt uses on this machine (deb822 .sources and one-line .list).
apt_mirror_for() {
    local suite=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        case "$f" in
        *.sources)
            # deb822: one stanza per paragraph.
            awk -v want="$suite" 'BEGIN { RS = ""; FS = "\n" }
                {
                    types = ""; suites = ""; uri = ""; enabled = "yes"
                    for (i = 1; i <= NF; i++) {
                        line = $i; key = tolower(line); sub(/:.*/, "", key); val = line; sub(/^[^:]*:[ \t]*/, "", val)
                        if (key == "types") types = " " val " "
                        else if (key == "uris") { split(val, u, /[ \t]+/); uri = u[1] }
                        else if (key == "suites") suites = " " val " "
                        else if (key == "enabled") enabled = tolower(val)
                    }
                    gsub(/[ \t]+/, " ", suites); gsub(/[ \t]+/, " ", types)
                    if (types ~ / deb / && enabled != "no" && index(suites, " " want " ") && uri != "") { print uri; exit }
                }' "$f"
            ;;
        *)
            awk -v want="$suite" '$1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == want) { print $i; exit }
                }' "$f"
            ;;
        esac
    done | head -n 1
}

# apt settings this machine needs to use its mirror (e.g. a snapshot-like
# mirror whose Release files are past Valid-Until), carried into the image so
# apt inside it works the same way.
host_apt_settings() {
    apt-config dump 2>/dev/null | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy(::[^ ]+)?) ' || true
}

# The host's own Debian codename (its apt sources name its suites).
# shellcheck disable=SC1091 # this machine's file
HOST_SUITE="$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")"

# make_base_image SUITE TAG: debootstrap SUITE (minbase) and import it as TAG, with
# apt set up as on this machine. The mirror is the one apt uses here for SUITE, or
# else the one it uses for the host's own suite (one archive serves every suite).
make_base_image() {
    local suite=$1 tag=$2 mirror security root
    mirror="${RB_HARNESS_DEBIAN_MIRROR:-$(apt_mirror_for "$suite")}"
    [ -n "$mirror" ] || [ -z "$HOST_SUITE" ] || mirror="$(apt_mirror_for "$HOST_SUITE")"
    mirror="${mirror:-http://deb.debian.org/debian}"
    security="${RB_HARNESS_SECURITY_MIRROR:-$(apt_mirror_for "$suite-security")}"
    [ -n "$security" ] || [ -z "$HOST_SUITE" ] || security="$(apt_mirror_for "$HOST_SUITE-security")"
    security="${security:-http://deb.debian.org/debian-security}"
    root="$WORK/rootfs-$suite"
    say "building $tag: debootstrap --variant=minbase $suite from $mirror"
    if ! debootstrap --variant=minbase --merged-usr "$suite" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1; then
        tail -n 30 "$WORK/debootstrap.log" >&2
        [ -f "$root/debootstrap/debootstrap.log" ] && tail -n 20 "$root/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (mirror $mirror)"
    fi

    # apt sources: the same mirrors as this machine, in the layout of Debian's images.
    rm -f "$root/etc/apt/sources.list"
    mkdir -p "$root/etc/apt/sources.list.d"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local settings
    settings="$(host_apt_settings)"
    if [ -n "$settings" ]; then
        printf '// Carried over from the machine that built this image (rbottle test harness).\n%s\n' \
            "$settings" >"$root/etc/apt/apt.conf.d/99rbottle-host"
    fi

    # Slim: what Debian's -slim images also leave out (docs, man pages, locales,
    # apt caches and lists), kept out of later installs too.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Keep the image slim: no documentation, manuals or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
// Drop downloaded packages after each install, as container images do.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    printf 'Acquire::Languages "none";\n' >"$root/etc/apt/apt.conf.d/docker-no-languages"
    printf 'Acquire::GzipIndexes "true";\n' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
    printf 'APT::AutoRemove::SuggestsImportant "false";\n' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"

    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
        "$root"/var/log/apt/* "$root"/tmp/* "$root"/var/tmp/* "$root"/debootstrap
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    # The engine provides these at run time; nothing of the build machine stays.
    : >"$root/etc/hostname"
    : >"$root/etc/resolv.conf"
    : >"$root/etc/machine-id"
    mkdir -p "$root/var/lib/apt/lists/partial"

    tar -C "$root" --numeric-owner --xattrs -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' \
            --message "rbottle test harness: debootstrap minbase $suite from $mirror" \
            - "$tag" >/dev/null
    rm -rf --one-file-system "$root"
    say "$tag imported ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"

    # An image built FROM it must be able to apt-get install, trusting the host
    # CA bundle (the outbound gateway inspects TLS). Needed for that:
    #   - sources pointing at the mirror this machine uses (written above);
    #   - the host's Acquire::Check-* settings (99rbottle-host above);
    #   - the host CA bundle copied to /etc/ssl/certs/ca-certificates.crt before
    #     apt runs (apt verifies https mirrors against it), and the extra CAs in
    #     /usr/local/share/ca-certificates so installing ca-certificates keeps them.
    local ctx
    ctx="$(new_context base-check "$HARNESS_DIR/images/base-check/Dockerfile")"
    say "checking that an image FROM $tag can apt-get install (curl) and trusts the host CAs"
    if ! docker build --pull=false -t rbottle-test/base-check:latest --build-arg "BASE_IMAGE=$tag" \
        --build-arg "CHECK_URL=$(printf '%s' "$mirror" | sed -E 's#^http://#https://#')/dists/$suite/Release" \
        "$ctx" >"$WORK/build.log" 2>&1; then
        tail -n 40 "$WORK/build.log" >&2
        docker image rm -f "$tag" >/dev/null 2>&1 || true
        die "an image FROM $tag cannot apt-get install; $tag removed"
    fi
    grep -q 'rbottle-base-check: https ok' "$WORK/build.log" ||
        warn "TLS check through the host CA bundle did not pass (apt itself works); see the base-check Dockerfile"
    docker image rm -f rbottle-test/base-check:latest >/dev/null 2>&1 || true
}

if have_image "$BASE_IMAGE"; then
    say "$BASE_IMAGE present"
else
    make_base_image bookworm "$BASE_IMAGE"
fi
if have_image "$FAKEVM_BASE_IMAGE"; then
    say "$FAKEVM_BASE_IMAGE present"
else
    make_base_image "$FAKEVM_SUITE" "$FAKEVM_BASE_IMAGE"
fi

# ---------------------------------------------------------------------------
# 3b. Go-built images: gitleaks and pipelock
# ---------------------------------------------------------------------------
# go_install NAME MODULE VERSION LDFLAGS -> path of a static binary, cached
go_install() {
    local name=$1 module=$2 version=$3 ldflags=$4 bindir
    bindir="$CACHE_DIR/bin/$name-$version"
    if [ -x "$bindir/$name" ]; then
        echo "$bindir/$name"
        return 0
    fi
    mkdir -p "$bindir.tmp"
    if ! CGO_ENABLED=0 GOBIN="$bindir.tmp" GOFLAGS=-buildvcs=false \
        "$GO" install -trimpath -ldflags "$ldflags" "$module@$version" >"$WORK/go-$name.log" 2>&1; then
        rm -rf "$bindir.tmp"
        return 1
    fi
    rm -rf "$bindir"
    mv "$bindir.tmp" "$bindir"
    echo "$bindir/$name"
}

# gitleaks: upstream's image is alpine + git + openssh-client + bash with the
# binary at /usr/bin/gitleaks, `safe.directory '*'`, ENTRYPOINT ["gitleaks"].
# No alpine here: the same layout on $BASE_IMAGE.
gitleaks_hash="$(inputs_hash "$HARNESS_DIR/images/gitleaks/Dockerfile" <(echo "$GITLEAKS_GO_MODULE@$GITLEAKS_GO_VERSION $BASE_IMAGE"))"
if have_image "$GITLEAKS_IMAGE" && [ "$(image_label "$GITLEAKS_IMAGE")" != "" ] && [ "$(image_label "$GITLEAKS_IMAGE")" != "$gitleaks_hash" ]; then
    say "$GITLEAKS_IMAGE was built from older harness inputs; rebuilding"
    docker image rm -f "$GITLEAKS_IMAGE" >/dev/null
fi
if have_image "$GITLEAKS_IMAGE"; then
    say "$GITLEAKS_IMAGE present"
else
    say "building $GITLEAKS_IMAGE: go install $GITLEAKS_GO_MODULE@$GITLEAKS_GO_VERSION"
    # Upstream's Dockerfile stamps the version with `git describe --tags` (v8.30.1).
    bin="$(go_install gitleaks "$GITLEAKS_GO_MODULE" "$GITLEAKS_GO_VERSION" \
        "-s -w -X=github.com/zricethezav/gitleaks/v8/version.Version=$GITLEAKS_GO_VERSION")" || {
        tail -n 20 "$WORK/go-gitleaks.log" >&2
        die "go install $GITLEAKS_GO_MODULE@$GITLEAKS_GO_VERSION failed"
    }
    ctx="$(new_context gitleaks "$HARNESS_DIR/images/gitleaks/Dockerfile" "$bin")"
    build "$GITLEAKS_IMAGE" "$ctx" --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL_KEY=$gitleaks_hash"
    out="$(docker run --rm "$GITLEAKS_IMAGE" version 2>&1)" || die "$GITLEAKS_IMAGE does not run: $out"
    say "$GITLEAKS_IMAGE built (gitleaks $out)"
fi

# pipelock: its own script, which `make pipelock-image` runs too (present, pulled,
# RB_HARNESS_PIPELOCK_BIN, the release source tarball, go install; see its header).
pipelock_problem=""
if ! RB_HARNESS_STRICT="${RB_HARNESS_STRICT:-0}" RB_HARNESS_CACHE_DIR="$CACHE_DIR" \
    RB_HARNESS_STATE_DIR="$STATE_DIR" RB_HARNESS_CA_BUNDLE="$CA_BUNDLE" \
    bash "$HARNESS_DIR/pipelock-image.sh"; then
    [ "${RB_HARNESS_STRICT:-0}" = 1 ] && die "$PIPELOCK_IMAGE could not be had (see above)"
    pipelock_problem="$(sed -n 's/^reason=//p' "$STATE_DIR/pipelock-unavailable" 2>/dev/null)"
    pipelock_problem="${pipelock_problem:-see above}"
fi

# ---------------------------------------------------------------------------
# 3c. Fake VMs (see FAKEVM.md for how tests run them)
# ---------------------------------------------------------------------------
# fakevm_image TAG DIR BASE: build DIR's Dockerfile FROM BASE as TAG unless it is current.
# Sets FAKEVM_BUILT=1 when it built.
fakevm_image() {
    local tag=$1 dir=$2 base=$3 hash ctx
    FAKEVM_BUILT=0
    hash="$(inputs_hash "$dir/Dockerfile" "$HARNESS_DIR/images/fakevm/entrypoint.sh" <(echo "$base $(docker image inspect -f '{{.Id}}' "$base")"))"
    if have_image "$tag" && [ "$(image_label "$tag")" = "$hash" ]; then
        say "$tag present ($(image_distro "$tag"))"
        return 0
    fi
    say "building $tag FROM $base"
    ctx="$(new_context "$(basename "$dir")" "$dir/Dockerfile" "$HARNESS_DIR/images/fakevm/entrypoint.sh")"
    build "$tag" "$ctx" --build-arg "BASE_IMAGE=$base" --label "$LABEL_KEY=$hash"
    FAKEVM_BUILT=1
    say "$tag built ($(image_distro "$tag"))"
}

# "Debian GNU/Linux 13 (trixie); docker.io 26.1.5+dfsg1-9+deb13u1+b1, runsc ..." of an image.
image_distro() {
    docker run --rm --network none --entrypoint sh "$1" -c '
        . /etc/os-release; printf "%s" "$PRETTY_NAME"
        pkgs=$(dpkg-query -W -f "\${Package} \${Version}, " docker.io runsc 2>/dev/null)
        [ -z "$pkgs" ] || printf "; %s" "${pkgs%, }"' 2>/dev/null || echo "unknown"
}

# Run TAG as the tests do (FAKEVM.md), and check that its engine runs a container on a
# network (runc), and under gVisor where runsc is registered. Prints what it found;
# exits on a fake VM whose engine does not work.
fakevm_smoke() {
    local tag=$1 name out version runtimes i
    name="rbt-vm-harness-$$"
    local run_args=(--cap-add SYS_ADMIN --cap-add NET_ADMIN --cap-add SYS_PTRACE
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined
        --label io.remotebottle.test=1)
    [ "$(docker info --format '{{.CgroupVersion}}')" != 2 ] || run_args+=(--cgroupns=private)
    docker run -d --name "$name" "${run_args[@]}" "$tag" >/dev/null
    # shellcheck disable=SC2064 # the name is fixed now
    trap "docker rm -f -v $name >/dev/null 2>&1 || true; cleanup" EXIT
    for ((i = 0; i < 60; i++)); do
        docker exec "$name" docker info >/dev/null 2>&1 && break
        sleep 1
    done
    version="$(docker exec "$name" docker version --format '{{.Server.Version}}' 2>&1)" || {
        docker exec "$name" tail -n 20 /var/log/dockerd.log >&2 || true
        docker rm -f -v "$name" >/dev/null
        die "the engine in $tag did not start: $version"
    }
    runtimes="$(docker exec "$name" docker info --format '{{range $n, $_ := .Runtimes}}{{$n}} {{end}}')"
    docker save "$FAKEVM_BASE_IMAGE" | docker exec -i "$name" docker load -q >/dev/null
    if ! out="$(docker exec "$name" docker run --rm "$FAKEVM_BASE_IMAGE" echo nested-ok 2>&1)" ||
        [ "$out" != nested-ok ]; then
        docker rm -f -v "$name" >/dev/null
        die "the engine in $tag cannot run a container: $out"
    fi
    say "$tag runs Docker Engine $version (runtimes: ${runtimes% }); a nested container runs"
    if [[ " $runtimes " == *" runsc "* ]]; then
        if out="$(docker exec "$name" docker run --rm --runtime=runsc "$FAKEVM_BASE_IMAGE" sh -c 'dmesg | head -n 1' 2>&1)" &&
            [[ "$out" == *gVisor* ]]; then
            say "$tag: a nested container runs under gVisor (runsc $(docker exec "$name" docker info --format '{{with index .Runtimes "runsc"}}{{.Args}}{{end}}'))"
        else
            warn "$tag: runsc is registered but a container does not run under it: $out"
        fi
    fi
    docker rm -f -v "$name" >/dev/null
    trap cleanup EXIT
}

fakevm_image "$FAKEVM_BARE_IMAGE" "$HARNESS_DIR/images/fakevm-bare" "$FAKEVM_BASE_IMAGE"
fakevm_image "$FAKEVM_IMAGE" "$HARNESS_DIR/images/fakevm" "$FAKEVM_BASE_IMAGE"
[ "$FAKEVM_BUILT" = 0 ] || fakevm_smoke "$FAKEVM_IMAGE"
# A bare VM on the previous Debian (docker.io 20.10): provisioning must refuse its engine.
fakevm_image "$FAKEVM_OLD_BARE_IMAGE" "$HARNESS_DIR/images/fakevm-bare" "$BASE_IMAGE"

if [ -n "$pipelock_problem" ]; then
    say "done in $((SECONDS - T0))s, WITHOUT $PIPELOCK_IMAGE (see warning above)"
else
    say "done in $((SECONDS - T0))s"
fi
