#!/bin/sh
# portier-entrypoint: the image's entry point.
#
# On the first start (no tenants file in the state volume yet) it seeds the
# routing table from /etc/portier/tenants.json when one is mounted; from then
# on the table in the state volume is the truth, changed with portierctl (or
# edited in the volume + SIGHUP). Then it execs portier with the arguments
# given (the image's CMD: -c /etc/portier/portier.json), so portier is PID 1
# and receives the stop signal itself. Arguments that do not start with "-"
# are a command to run instead (docker run IMAGE portierctl --help).
set -eu
case "${1:-}" in
-*|"") ;;
*) exec "$@" ;;
esac
state=${PORTIER_STATE_DIR:-/var/lib/portier}
seed=${PORTIER_TENANTS_SEED:-/etc/portier/tenants.json}
if [ -f "$seed" ] && [ -d "$state" ] && [ ! -e "$state/tenants.json" ]; then
	cp "$seed" "$state/.tenants.json.seed"
	mv "$state/.tenants.json.seed" "$state/tenants.json"
	echo "portier-entrypoint: seeded $state/tenants.json from $seed" >&2
fi
exec portier "$@"
