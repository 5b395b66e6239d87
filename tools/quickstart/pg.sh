#!/usr/bin/env bash
# A private PostgreSQL for the README quickstart (`make quickstart-db`): the
# catalog configs/director.toml expects — database "tapeward" owned by role
# "tapeward" on 127.0.0.1:5433 — with nothing else to install or configure
# than Debian's `postgresql` package (its server programs; no service needs
# to run, none is touched).
#
#   tools/quickstart/pg.sh start    # first time: initdb; then start; create role + database if missing
#   tools/quickstart/pg.sh stop
#   tools/quickstart/pg.sh status
#
# Data in ./state/pg of the source tree (QUICKSTART_PG_DIR to put it
# elsewhere; as root, when the OS user postgres cannot reach ./state, a
# directory under /var/tmp), log next to it (./state/pg.log). It listens on 127.0.0.1 only, port
# 5433 (QUICKSTART_PG_PORT; 5433 so that it never collides with a system
# PostgreSQL on 5432), no unix socket, and trusts local connections: a
# development catalog, not a production one. Run as root, it runs the
# server as the OS user postgres (PostgreSQL refuses root).
#
# To use a system PostgreSQL instead, see configs/director.toml ([catalog]).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${QUICKSTART_PG_DIR:-$ROOT/state/pg}
PORT=${QUICKSTART_PG_PORT:-5433}
LOG=$DIR.log

die() { printf 'quickstart-db: %s\n' "$*" >&2; exit 1; }

PGBIN=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r) $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)"); do
	if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
		PGBIN=$d
		break
	fi
done
[ -n "$PGBIN" ] || die "initdb/pg_ctl/postgres not found in /usr/lib/postgresql/*/bin or on \$PATH: apt-get install postgresql (no service needs to run)"
pgclient() {
	if [ -x "$PGBIN/$1" ]; then echo "$PGBIN/$1"; elif command -v "$1" >/dev/null; then command -v "$1"; else die "$1 not found: apt-get install postgresql-client"; fi
}

RUN_AS=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root, and PostgreSQL refuses root; the OS user postgres does not exist (apt-get install postgresql creates it)"
	if command -v runuser >/dev/null; then RUN_AS=(runuser -u postgres --); else RUN_AS=(su postgres -s /bin/sh -c '"$0" "$@"'); fi
fi

# As root, the server runs as postgres, which must reach its data: a tree
# under a private home (/root) is not reachable, so the data then goes to
# a directory of its own under /var/tmp (the same one for this tree every
# time).
mkdir -p "$ROOT/state"
if [ -z "${QUICKSTART_PG_DIR:-}" ] && [ "${#RUN_AS[@]}" -gt 0 ] && ! "${RUN_AS[@]}" test -x "$ROOT/state"; then
	DIR=/var/tmp/tapeward-quickstart-$(printf %s "$ROOT" | cksum | cut -d' ' -f1)/pg
	LOG=$DIR.log
	[ "${1:-}" = start ] && echo "quickstart-db: the OS user postgres cannot reach $ROOT/state; the catalog's data goes to $DIR"
	mkdir -p "$(dirname "$DIR")"
fi

case $DIR in /*) ;; *) DIR=$PWD/$DIR LOG=$DIR.log ;; esac
# postgres may not be allowed into the current directory (it says so).
[ "${#RUN_AS[@]}" -gt 0 ] && cd /

running() { "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; }

case ${1:-} in
start)
	if [ ! -s "$DIR/PG_VERSION" ]; then
		mkdir -p "$DIR"
		chmod 0700 "$DIR"
		touch "$LOG"
		if [ "${#RUN_AS[@]}" -gt 0 ]; then
			chown postgres: "$DIR" "$LOG"
			"${RUN_AS[@]}" test -w "$DIR" ||
				die "the OS user postgres cannot reach $DIR (a parent directory is not searchable by others); set QUICKSTART_PG_DIR to a directory it can reach, e.g. /var/tmp/tapeward-pg"
		fi
		echo "quickstart-db: initdb $DIR"
		"${RUN_AS[@]}" "$PGBIN/initdb" -D "$DIR" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null ||
			die "initdb failed"
	fi
	if running; then
		echo "quickstart-db: already running in $DIR"
	else
		if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
			die "something else listens on 127.0.0.1:$PORT; stop it, or set QUICKSTART_PG_PORT and the same port in configs/director.toml [catalog]"
		fi
		"${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$DIR" -l "$LOG" -w -t 30 \
			-o "-c listen_addresses=127.0.0.1 -c port=$PORT -c unix_socket_directories=" start >/dev/null ||
			die "pg_ctl start failed; see $LOG"
	fi
	psql=$(pgclient psql)
	if [ "$("$psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atc "SELECT 1 FROM pg_roles WHERE rolname = 'tapeward'")" != 1 ]; then
		"$(pgclient createuser)" -h 127.0.0.1 -p "$PORT" -U postgres tapeward || die "createuser tapeward failed"
	fi
	if [ "$("$psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'tapeward'")" != 1 ]; then
		"$(pgclient createdb)" -h 127.0.0.1 -p "$PORT" -U postgres -O tapeward tapeward || die "createdb tapeward failed"
	fi
	echo "quickstart-db: PostgreSQL on 127.0.0.1:$PORT, database tapeward owned by tapeward (data $DIR, log $LOG)"
	echo "quickstart-db: stop it with: make quickstart-db-stop"
	;;
stop)
	if running; then
		"${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$DIR" -m fast -w -t 30 stop >/dev/null || die "pg_ctl stop failed; see $LOG"
		echo "quickstart-db: stopped ($DIR is kept; rm -rf it to start afresh)"
	else
		echo "quickstart-db: not running"
	fi
	;;
status)
	if running; then echo "quickstart-db: running on 127.0.0.1:$PORT (data $DIR)"; else echo "quickstart-db: not running (data $DIR)"; exit 3; fi
	;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
