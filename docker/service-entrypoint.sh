#!/bin/sh
# Entrypoint of the service image: join the Ray cluster, then run the command (CMD).
#
# `ray.init(address=HOST:PORT)` attaches a driver only to a node of the cluster running on
# this machine, so the container first starts a raylet of its own: a node with no CPUs and
# no GPUs, so that nothing is scheduled here and the evaluation actors go to the workers.
# Without RAY_ADDRESS, `golf serve` starts an embedded single-node Ray (plain docker run).
set -eu

if [ -n "${RAY_ADDRESS:-}" ]; then
    ray start --address="${RAY_ADDRESS}" --num-cpus=0 --num-gpus=0 --disable-usage-stats
    # `ray start` leaves its daemons running; compose's `init: true` reaps them.
    if [ "$#" -ge 2 ] && [ "$1" = golf ] && [ "$2" = serve ]; then
        exec "$@" --ray-address "${RAY_ADDRESS}"
    fi
fi
exec "$@"
