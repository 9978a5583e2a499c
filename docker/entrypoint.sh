#!/bin/bash
# Entry point of the image: sizes the Spark driver from the container's memory limit, checks that
# /data can be written, then runs the command.
#
# The driver's heap is LINKAGE_DRIVER_MEMORY when set, else LINKAGE_DRIVER_MEMORY_PERCENT (65) % of
# the container's memory limit (cgroup v2 memory.max or v1 memory.limit_in_bytes), leaving the rest
# for the JVM's off-heap memory and Spark's Python workers. With no limit the configuration's
# spark.driver_memory stands. It reaches `spark-submit` through SPARK_DRIVER_MEMORY and
# `python -m jobs.<name>` as a first `--set spark.driver_memory=...` (a later --set still wins).
set -euo pipefail

say() { echo "entrypoint: $*" >&2; }

memory_limit_bytes() {
    local file value host_kib cgroup=${LINKAGE_CGROUP_ROOT:-/sys/fs/cgroup}  # (overridden by tests only)
    for file in "$cgroup/memory.max" "$cgroup/memory/memory.limit_in_bytes"; do
        [ -r "$file" ] || continue
        value=$(cat "$file")
        [ "$value" = max ] && return 1
        # cgroup v1 reports "no limit" as a huge number: anything above the machine's RAM.
        host_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
        [ "$((value / 1024))" -lt "$host_kib" ] || return 1
        echo "$value"
        return 0
    done
    return 1
}

driver_memory=${LINKAGE_DRIVER_MEMORY:-}
if [ -z "$driver_memory" ] && limit=$(memory_limit_bytes); then
    percent=${LINKAGE_DRIVER_MEMORY_PERCENT:-65}
    driver_memory="$((limit / 1048576 * percent / 100))m"
    say "Spark driver memory $driver_memory ($percent% of the container's $((limit / 1048576))m memory limit)"
fi

is_job=0
case "${1:-} ${2:-} ${3:-}" in
    "python -m jobs."* | "python3 -m jobs."* | spark-submit*) is_job=1 ;;
esac

if [ "$is_job" = 1 ] && [ -d /data ] && [ ! -w /data ]; then
    say "/data is not writable by uid $(id -u) ($(id -un)), the user this image runs as:" \
        "make the folder you mount there writable by it (e.g. chown $(id -u):$(id -g) data)"
    exit 2
fi

if [ -n "$driver_memory" ]; then
    export SPARK_DRIVER_MEMORY=$driver_memory
    case "${1:-} ${2:-} ${3:-}" in
        "python -m jobs."* | "python3 -m jobs."*)
            interpreter=$1 flag=$2 module=$3
            shift 3
            set -- "$interpreter" "$flag" "$module" --set "spark.driver_memory=$driver_memory" "$@" ;;
    esac
fi
exec "$@"
