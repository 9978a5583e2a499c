#!/usr/bin/env bash
# Build the single-node image (linkage:latest) from docker/Dockerfile, the same Dockerfile either way:
#   - with Docker when a Docker engine answers (`docker info`): FROM python:3.11-slim-bookworm
#     pulled from the registry;
#   - otherwise with podman, FROM a Debian bookworm base bootstrapped locally with mmdebstrap from
#     the host's Debian mirror, so no container registry is needed.
# Either way the base trusts the host's extra CA certificates (/usr/local/share/ca-certificates,
# e.g. a TLS-inspecting proxy's), so pip and Java's keystore work behind such a proxy.
#
#   docker/build.sh                      (or `make image`)
# Settings (environment): LINKAGE_IMAGE (default linkage:latest), LINKAGE_ENGINE=docker|podman
# (default: docker when an engine answers, else podman), DEBIAN_MIRROR and DEBIAN_SECURITY_MIRROR
# (default: the host apt's),
# LINKAGE_REBUILD_BASE=1 to rebootstrap the local base, LINKAGE_BUILD_CACHE=0 for a build without the
# layer cache (what `make test-image` does).
set -euo pipefail
# Podman's network helper (netavark) runs iptables from /usr/sbin: with a PATH without the sbin folders (env -i,
# cron) every RUN step that sets up a network failed with "netavark: No such file or directory".
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin:/sbin" ;; esac
export PATH
cd "$(dirname "$0")/.."

IMAGE=${LINKAGE_IMAGE:-linkage:latest}
REGISTRY_BASE=python:3.11-slim-bookworm
LOCAL_BASE=localhost/linkage-base:bookworm
CA_DIR=/usr/local/share/ca-certificates
GIT_COMMIT=${GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
NO_CACHE=()

say() { echo "build: $*" >&2; }

extra_ca_certs() {
    # Certificates the host added on top of the Debian bundle (update-ca-certificates reads *.crt).
    [ -d "$CA_DIR" ] && find "$CA_DIR" -type f -name '*.crt' | sort
}

debian_uri() {  # debian_uri main|security: the host apt's Debian mirror of that kind
    local kind=$1 uris
    uris=$( (awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' /etc/apt/sources.list.d/*.sources
             awk '$1 == "deb" {print ($2 ~ /^\[/ ? $3 : $2)}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list
            ) 2>/dev/null | grep -i debian || true)
    if [ "$kind" = security ]; then
        grep -m1 -- '-security' <<< "$uris" || echo http://deb.debian.org/debian-security
    else
        grep -v -- '-security' <<< "$uris" | head -n1 | grep . || echo http://deb.debian.org/debian
    fi
}

choose_engine() {
    case "${LINKAGE_ENGINE:-auto}" in
        docker|podman) echo "$LINKAGE_ENGINE" ;;
        auto)
            if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
            elif command -v podman >/dev/null; then echo podman
            else
                say "no Docker engine answers and podman is not installed: install one" \
                    "(Debian: apt-get install -y podman runc mmdebstrap podman-compose)"
                exit 2
            fi ;;
        *) say "LINKAGE_ENGINE must be docker or podman, not '$LINKAGE_ENGINE'"; exit 2 ;;
    esac
}

local_base_with_podman() {
    # Debian bookworm minbase with Python 3.11, imported as an image: what python:3.11-slim gives,
    # built from the host's apt mirror instead of a container registry.
    if [ "${LINKAGE_REBUILD_BASE:-0}" != 1 ] && podman image exists "$LOCAL_BASE"; then
        say "reusing the local base $LOCAL_BASE (LINKAGE_REBUILD_BASE=1 rebuilds it)"
        return
    fi
    command -v mmdebstrap >/dev/null || { say "mmdebstrap is needed for the local base: apt-get install -y mmdebstrap"; exit 2; }
    local mirror security hooks=() certs
    mirror=${DEBIAN_MIRROR:-$(debian_uri main)}
    security=${DEBIAN_SECURITY_MIRROR:-$(debian_uri security)}
    mapfile -t certs < <(extra_ca_certs)
    if [ "${#certs[@]}" -gt 0 ]; then
        hooks+=(--customize-hook="copy-in ${certs[*]} $CA_DIR"
                --customize-hook='chroot "$1" update-ca-certificates')
        say "CA certificates: the base trusts the host's extra ${#certs[@]} from $CA_DIR: $(basename -a "${certs[@]}" | tr '\n' ' ')"
    else
        say "CA certificates: none in $CA_DIR; the base trusts Debian's bundle only"
    fi
    # As slim as debian:bookworm-slim, under python:3.11-slim: no docs (but the licences), man pages
    # or translations, now or in what the Dockerfile installs later (the dpkg settings stay in
    # /etc/dpkg/dpkg.cfg.d/99mmdebstrap), about 60 MB less.
    local slim=()
    for path in /usr/share/doc/'*' /usr/share/man/'*' /usr/share/groff/'*' /usr/share/info/'*' \
                /usr/share/lintian/'*' /usr/share/linda/'*' /usr/share/locale/'*'; do
        slim+=(--dpkgopt="path-exclude=$path")
    done
    slim+=(--dpkgopt='path-include=/usr/share/doc/*/copyright')
    say "bootstrapping $LOCAL_BASE with mmdebstrap from $mirror and $security (bookworm, -updates, -security)"
    mmdebstrap --quiet --variant=minbase --include=ca-certificates,python3.11,python3.11-venv \
        "${slim[@]}" "${hooks[@]}" --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
        bookworm - "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
        "deb $security bookworm-security main" | podman import --quiet - "$LOCAL_BASE" >/dev/null
}

registry_base_with_docker() {
    # The registry image as is, or, when the host trusts extra CAs, a thin layer over it that
    # trusts them too (made here so the Dockerfile stays the same for every route).
    local certs
    mapfile -t certs < <(extra_ca_certs)
    if [ "${#certs[@]}" -eq 0 ]; then
        say "CA certificates: none in $CA_DIR; using $REGISTRY_BASE as is"
        echo "$REGISTRY_BASE"
        return
    fi
    local context
    context=$(mktemp -d)
    cp "${certs[@]}" "$context/"
    printf 'FROM %s\nCOPY *.crt %s/\nRUN update-ca-certificates\n' "$REGISTRY_BASE" "$CA_DIR" > "$context/Dockerfile"
    say "CA certificates: adding the host's extra ${#certs[@]} from $CA_DIR to $REGISTRY_BASE (image linkage-base:ca)"
    docker build --quiet -t linkage-base:ca "$context" >/dev/null
    rm -rf "$context"
    echo linkage-base:ca
}

engine=$(choose_engine)
if [ "${LINKAGE_BUILD_CACHE:-1}" = 0 ]; then
    NO_CACHE=(--no-cache)
    [ "$engine" = podman ] && NO_CACHE+=(--layers=false)  # and keep no intermediate images
fi
started=$SECONDS
if [ "$engine" = docker ]; then
    base=$(registry_base_with_docker)
    say "engine: docker; base $base"
    docker build "${NO_CACHE[@]}" --build-arg BASE_IMAGE="$base" --build-arg GIT_COMMIT="$GIT_COMMIT" -f docker/Dockerfile -t "$IMAGE" .
    size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
else
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/docker/containers.conf}
    say "engine: podman (no Docker engine answers); CONTAINERS_CONF=$CONTAINERS_CONF"
    local_base_with_podman
    say "base: $LOCAL_BASE, built locally (no registry) in $((SECONDS - started)) s"
    podman build "${NO_CACHE[@]}" --build-arg BASE_IMAGE="$LOCAL_BASE" --build-arg GIT_COMMIT="$GIT_COMMIT" \
        -f docker/Dockerfile -t "$IMAGE" .
    size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
fi
say "built $IMAGE with $engine in $((SECONDS - started)) s; image size $((size / 1000000)) MB"
