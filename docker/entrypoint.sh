#!/bin/sh
# Entrypoint of the kcron image: the first argument names the program, the rest are its arguments.
#   dispatcher | kcron-dispatcher       -> kcron-dispatcher ARGS
#   worker | kcron-worker               -> kcron-worker ARGS
#   cron-producer | kcron-cron-producer -> kcron-cron-producer ARGS  (not built yet: exits 2)
#   relay | kcron-relay                 -> kcron-relay ARGS      (tenants' input topics, docs/relay.md)
#   kcron | cli                         -> kcron ARGS            (no argument: kcron --help)
#   -...                                -> kcron -...            (e.g. `docker run IMAGE --help`)
#   anything else                       -> run as given          (sh, kcat, ...)
# Configuration of the daemons (kcron-<name>), passed before their arguments:
#   KCRON_CONFIG unset         -> --config $KCRON_CONFIG_DIR/<name>.toml if that file exists
#                                 (KCRON_CONFIG_DIR defaults to /etc/kcron: dispatcher.toml, worker.toml)
#   KCRON_CONFIG=/path/x.toml  -> --config /path/x.toml (must be readable)
#   KCRON_CONFIG= (empty)      -> no --config
set -eu

if [ "$#" -eq 0 ]; then
  set -- kcron --help
fi

program="$1"
case "$program" in
  dispatcher | kcron-dispatcher) program=kcron-dispatcher ;;
  worker | kcron-worker) program=kcron-worker ;;
  cron-producer | producer | kcron-cron-producer) program=kcron-cron-producer ;;
  relay | kcron-relay) program=kcron-relay ;;
  kcron | cli) program=kcron ;;
  -*) set -- kcron "$@"; program=kcron ;;
  *) exec "$@" ;;
esac
shift

if ! command -v "$program" >/dev/null 2>&1; then
  if [ "$program" = kcron-cron-producer ]; then
    echo "kcron-entrypoint: kcron-cron-producer is not part of this build yet (it arrives with the cron-producer issue; see cron-producer/README.md)" >&2
  else
    echo "kcron-entrypoint: $program is not in this image" >&2
  fi
  exit 2
fi

case "$program" in
  kcron-dispatcher | kcron-worker | kcron-cron-producer | kcron-relay)
    if [ -n "${KCRON_CONFIG+set}" ]; then
      if [ -z "$KCRON_CONFIG" ]; then
        exec "$program" "$@"
      fi
      if [ ! -r "$KCRON_CONFIG" ]; then
        echo "kcron-entrypoint: KCRON_CONFIG=$KCRON_CONFIG is not a readable file" >&2
        exit 64
      fi
      exec "$program" --config "$KCRON_CONFIG" "$@"
    fi
    default_config="${KCRON_CONFIG_DIR:-/etc/kcron}/${program#kcron-}.toml"
    if [ -r "$default_config" ]; then
      exec "$program" --config "$default_config" "$@"
    fi
    ;;
esac
exec "$program" "$@"
