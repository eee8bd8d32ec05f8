#!/usr/bin/env bash
# Seed the Docker engine with the pinned pipelock image ($PIPELOCK_IMAGE in
# remotebottle/resources/pins.env), the egress proxy every bottle runs.
#
# Tried in this order; each step runs only if the previous ones gave no image:
#   1. the image is already on the engine;
#   2. `docker pull` of the pinned reference (what a user's machine does);
#   3. RB_HARNESS_PIPELOCK_BIN: a static linux binary of the pinned release;
#   4. a source tarball of the pinned release (RB_HARNESS_PIPELOCK_SRC, by default
#      ../shared/vendor/pipelock-<version>.tar.gz beside the checkout when it exists),
#      checked against PIPELOCK_SRC_SHA256 and built with Go as the release is
#      (same ldflags, so `pipelock version` reports the pinned version); the binary
#      is cached by the tarball's hash, so a second run builds nothing;
#   5. `go install $PIPELOCK_GO_MODULE@$PIPELOCK_GO_VERSION` (the pinned commit).
# A binary is wrapped like upstream's release image: FROM scratch, a CA bundle,
# /pipelock, port 8888, a healthcheck.
#
# Usage: pipelock-image.sh            (a missing image is an error, exit 1)
#        RB_HARNESS_STRICT=0 pipelock-image.sh   (a missing image is a warning, exit 3)
# Needs: docker, and for steps 4-5 a Go toolchain (`go` on PATH or /usr/local/go/bin).
set -euo pipefail

HARNESS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HARNESS_DIR/../.." && pwd)"
PINS_FILE="$REPO_ROOT/remotebottle/resources/pins.env"
CACHE_DIR="${RB_HARNESS_CACHE_DIR:-/var/cache/rbottle-harness}"
STATE_DIR="${RB_HARNESS_STATE_DIR:-/var/lib/rbottle-harness}"
CA_BUNDLE="${RB_HARNESS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
export DOCKER_BUILDKIT=0
export PATH="/usr/local/go/bin:$PATH"

say() { printf 'pipelock-image: %s\n' "$*"; }
die() {
    printf 'pipelock-image: ERROR: %s\n' "$*" >&2
    exit 1
}

set -a
# shellcheck source=/dev/null
. "$PINS_FILE"
set +a
for key in PIPELOCK_IMAGE PIPELOCK_GO_MODULE PIPELOCK_GO_VERSION PIPELOCK_SRC_SHA256; do
    [ -n "${!key:-}" ] || die "$PINS_FILE has no $key"
done
VERSION="${PIPELOCK_IMAGE##*:}"
# The version stamps of upstream's release build (.goreleaser.yaml).
PKG=github.com/luckyPipewrench/pipelock/internal
LDFLAGS="-s -w -X $PKG/cliutil.Version=$VERSION -X $PKG/proxy.Version=$VERSION -X $PKG/cliutil.GitCommit=${PIPELOCK_GO_VERSION:0:7}"

mkdir -p "$CACHE_DIR" "$STATE_DIR"
WORK="$(mktemp -d /var/tmp/rbottle-pipelock.XXXXXX)"
trap 'rm -rf --one-file-system "$WORK"' EXIT

have_image() { docker image inspect "$PIPELOCK_IMAGE" >/dev/null 2>&1; }

need_go() {
    command -v go >/dev/null || {
        echo "no Go toolchain (install Go 1.25 or newer)"
        return 1
    }
}

# wrap BINARY SOURCE: build $PIPELOCK_IMAGE around a static pipelock binary.
wrap() {
    local bin=$1 source=$2 out
    out="$("$bin" version 2>&1 || true)"
    case "$out" in
    *"version $VERSION"*) ;;
    *) die "$bin does not report version $VERSION: ${out%%$'\n'*}" ;;
    esac
    [ -s "$CA_BUNDLE" ] || die "CA bundle $CA_BUNDLE missing or empty"
    mkdir -p "$WORK/ctx"
    cp "$HARNESS_DIR/images/pipelock/Dockerfile" "$WORK/ctx/"
    cp "$CA_BUNDLE" "$WORK/ctx/host-ca-bundle.crt"
    cp "$bin" "$WORK/ctx/pipelock"
    docker build --pull=false -q -t "$PIPELOCK_IMAGE" \
        --label "org.remotebottle.harness.source=$source" "$WORK/ctx" >"$WORK/build.log" 2>&1 || {
        tail -n 20 "$WORK/build.log" >&2
        die "docker build of $PIPELOCK_IMAGE failed"
    }
    out="$(docker run --rm "$PIPELOCK_IMAGE" version 2>&1 | head -n 1)" || die "$PIPELOCK_IMAGE does not run: $out"
    say "$PIPELOCK_IMAGE built from $source ($out)"
}

# from_source TARBALL -> path of the cached binary built from it.
from_source() {
    local tarball=$1 sum out top
    sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
    [ "$sum" = "$PIPELOCK_SRC_SHA256" ] ||
        die "$tarball has sha256 $sum, not the pinned $PIPELOCK_SRC_SHA256 (PIPELOCK_SRC_SHA256 in pins.env)"
    out="$CACHE_DIR/pipelock-src-${sum:0:16}-$VERSION"
    if [ -x "$out/pipelock" ]; then
        echo "$out/pipelock"
        return 0
    fi
    need_go >&2 || die "cannot build pipelock from $tarball: no Go toolchain"
    tar -xzf "$tarball" -C "$WORK"
    top="$(find "$WORK" -mindepth 1 -maxdepth 1 -type d -name 'pipelock-*' | head -n 1)"
    [ -f "$top/go.mod" ] || die "$tarball holds no pipelock source tree (no pipelock-*/go.mod)"
    say "building pipelock $VERSION from $tarball (about a minute)" >&2
    mkdir -p "$out.tmp"
    (cd "$top" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "$LDFLAGS" \
        -o "$out.tmp/pipelock" ./cmd/pipelock) >"$WORK/go.log" 2>&1 || {
        tail -n 20 "$WORK/go.log" >&2
        rm -rf "$out.tmp"
        die "go build of pipelock from $tarball failed"
    }
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "$out/pipelock"
}

# from_module -> path of the cached binary `go install` made, or a reason on stdout and exit 1.
from_module() {
    local out="$CACHE_DIR/pipelock-mod-${PIPELOCK_GO_VERSION:0:16}-$VERSION"
    if [ -x "$out/pipelock" ]; then
        echo "$out/pipelock"
        return 0
    fi
    need_go || return 1
    mkdir -p "$out.tmp"
    if ! CGO_ENABLED=0 GOBIN="$out.tmp" GOFLAGS=-buildvcs=false \
        go install -trimpath -ldflags "$LDFLAGS" "$PIPELOCK_GO_MODULE@$PIPELOCK_GO_VERSION" >"$WORK/go.log" 2>&1; then
        rm -rf "$out.tmp"
        echo "go install $PIPELOCK_GO_MODULE@$PIPELOCK_GO_VERSION failed: $(grep -m1 -o '40[0-9] [A-Za-z ]*\|not available[^"]*' "$WORK/go.log" || tail -n 1 "$WORK/go.log")"
        return 1
    fi
    rm -rf "$out"
    mv "$out.tmp" "$out"
    echo "$out/pipelock"
}

problem=""
default_src="$REPO_ROOT/../shared/vendor/pipelock-$VERSION.tar.gz"
src="${RB_HARNESS_PIPELOCK_SRC:-}"
[ -n "$src" ] || { [ -f "$default_src" ] && src="$default_src"; } || true

if have_image; then
    say "$PIPELOCK_IMAGE present"
elif docker pull -q "$PIPELOCK_IMAGE" >"$WORK/pull.log" 2>&1; then
    say "$PIPELOCK_IMAGE pulled"
else
    say "no registry gave $PIPELOCK_IMAGE ($(tail -n 1 "$WORK/pull.log" | cut -c1-160))"
    if [ -n "${RB_HARNESS_PIPELOCK_BIN:-}" ]; then
        [ -x "$RB_HARNESS_PIPELOCK_BIN" ] || die "RB_HARNESS_PIPELOCK_BIN=$RB_HARNESS_PIPELOCK_BIN is not an executable file"
        wrap "$RB_HARNESS_PIPELOCK_BIN" "RB_HARNESS_PIPELOCK_BIN"
    elif [ -n "$src" ]; then
        [ -f "$src" ] || die "RB_HARNESS_PIPELOCK_SRC=$src is not a file"
        bin="$(from_source "$src")"
        wrap "$bin" "source $(basename "$src") sha256 ${PIPELOCK_SRC_SHA256:0:16}"
    elif bin="$(from_module)"; then
        wrap "$bin" "$PIPELOCK_GO_MODULE@$PIPELOCK_GO_VERSION"
    else
        problem="no registry answered, no RB_HARNESS_PIPELOCK_BIN or source tarball ($default_src) was given, and $bin"
    fi
fi

if [ -z "$problem" ]; then
    rm -f "$STATE_DIR/pipelock-unavailable"
    exit 0
fi
printf 'reason=%s\n' "$problem" >"$STATE_DIR/pipelock-unavailable"
if [ "${RB_HARNESS_STRICT:-1}" = 1 ]; then
    die "$PIPELOCK_IMAGE not seeded: $problem"
fi
printf 'pipelock-image: WARNING: %s NOT seeded: %s\n' "$PIPELOCK_IMAGE" "$problem" >&2
exit 3
