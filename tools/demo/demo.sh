#!/usr/bin/env bash
# Tapeward demo (`make demo`): on a machine with Go and the PostgreSQL server
# programs and nothing running, build everything, start a private PostgreSQL,
# the virtual tape library (vtl), a storage daemon (sd1) and the director in
# a temporary directory, label five encrypted volumes with tapectl, mount one,
# look at the drive, unmount it, list the key events, then start a file
# daemon (filed), back up a generated sample tree (Full), change, add and
# delete a few files, run an Incremental that takes exactly those and records
# the deletion, restore the Incremental's changes and then everything to a
# temporary directory (compared with diff -r), and stop everything.
#
#   tools/demo/demo.sh            # everything is stopped and removed at the end
#   KEEP=1 tools/demo/demo.sh     # leave it running; prints how to connect and stop
#   DR=1 tools/demo/demo.sh       # (make dr-demo) then the disaster-recovery act: an escrow key,
#                                 # the catalog backup job, the catalog and director gone, the
#                                 # files back with tapextract from tapes + crypto cache + KEK, again
#                                 # with only the escrow paper key, the catalog from its bootstrap
#   ISCSI=1 tools/demo/demo.sh    # (make iscsi-demo) the same, with the vtl also serving as an iSCSI
#                                 # target and storaged reaching changer and drives only through
#                                 # iscsi:// addresses (its own userspace initiator)
#
# Environment: BIN (default ./bin), DEMO_DIRECTOR_PORT (19101),
# DEMO_STORAGED_PORT (19103), DEMO_FILED_PORT (19102), DEMO_ISCSI_PORT (19260), KEEP (0),
# SKIP_BUILD (0), DR (0), ISCSI (0).
#
# Every step says what it does and fails loudly: the failing command, its
# exit status and the tail of the logs of whatever it talked to. An EXIT trap
# stops every process the demo started (also after a failure or Ctrl-C).
set -Eeuo pipefail

t0=$(date +%s%N)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${BIN:-$ROOT/bin}
case $BIN in /*) ;; *) BIN=$ROOT/$BIN ;; esac
KEEP=${KEEP:-0}
DR=${DR:-0}
DPORT=${DEMO_DIRECTOR_PORT:-19101}
SPORT=${DEMO_STORAGED_PORT:-19103}
FPORT=${DEMO_FILED_PORT:-19102}
ISCSI=${ISCSI:-0}
IPORT=${DEMO_ISCSI_PORT:-19260}

T=""             # the demo's temporary directory
PIDS=()          # daemons we started, in start order: "name:pid"
PG_STARTED=0
RUN_AS=()        # prefix that runs PostgreSQL programs as user postgres when we are root
PGBIN=""
FAILED_STEP=""

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { FAILED_STEP=$1; printf '\n'; bold "==> [$(elapsed)s] $1"; }
say()  { printf '    %s\n' "$@"; }
elapsed() { local t1; t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

# logtail FILE...: the last lines of each log, for failure messages.
logtail() {
	local f
	for f in "$@"; do
		[ -s "$f" ] || continue
		printf '    --- last lines of %s ---\n' "$f" >&2
		tail -n 15 "$f" | sed 's/^/    | /' >&2
	done
}

die() {
	printf '\ndemo: FAILED at step "%s": %s\n' "$FAILED_STEP" "$*" >&2
	[ -n "$T" ] && logtail "$T"/logs/*.log
	exit 1
}

# stop_all stops the daemons (newest first: SIGTERM, then SIGKILL after
# 10 s) and PostgreSQL.
stop_all() {
	stop_daemons
	if [ "$PG_STARTED" = 1 ]; then
		"${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
			printf 'demo: could not stop PostgreSQL in %s/pg/data (see %s/logs/postgres.log)\n' "$T" "$T" >&2
		PG_STARTED=0
	fi
}

# stop_daemons [KEEP]: stops the daemons, newest first, except the one
# named KEEP (PostgreSQL keeps running).
stop_daemons() {
	local i name pid n keep=${1:-} kept=()
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		name=${PIDS[i]%%:*}
		pid=${PIDS[i]##*:}
		if [ "$name" = "$keep" ]; then
			kept+=("${PIDS[i]}")
			continue
		fi
		kill -0 "$pid" 2>/dev/null || continue
		kill -TERM "$pid" 2>/dev/null || true
		for ((n = 0; n < 100; n++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			printf 'demo: %s (pid %s) did not stop within 10 s; killing it\n' "$name" "$pid" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
	PIDS=("${kept[@]}")
}

on_exit() {
	local code=$?
	trap - EXIT INT TERM
	if [ "$code" = 0 ] && [ "$KEEP" = 1 ]; then
		write_stop_script
		print_connect
		printf '\ndemo: done in %ss; everything is still running (KEEP=1)\n' "$(elapsed)"
		exit 0
	fi
	stop_all
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$KEEP" = 1 ]; then
			printf 'demo: kept %s (logs in %s/logs)\n' "$T" "$T" >&2
		else
			rm -rf "$T"
		fi
	fi
	if [ "$code" = 0 ]; then
		printf '\ndemo: done in %ss; everything stopped and removed\n' "$(elapsed)"
	else
		printf 'demo: failed after %ss (exit %s)\n' "$(elapsed)" "$code" >&2
	fi
	exit "$code"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

write_stop_script() {
	{
		echo '#!/bin/sh'
		echo "# Stops the demo started in $T and removes it."
		local i p
		for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
			p=${PIDS[i]##*:}
			# only if that pid is still the demo's process (its command line names $T)
			echo "if grep -qF '$T' /proc/$p/cmdline 2>/dev/null; then kill $p; while kill -0 $p 2>/dev/null; do sleep 0.1; done; fi"
		done
		printf '%q ' "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -m fast -w stop
		echo
		printf 'rm -rf %q\n' "$T"
	} >"$T/stop.sh"
	chmod 0700 "$T/stop.sh"
}

print_connect() {
	bold "==> Still running (KEEP=1)"
	say "console:     $BIN/tapectl -c $T/tapectl.toml            (interactive)" \
		"             $BIN/tapectl -c $T/tapectl.toml \"list volumes\"" \
		"catalog:     psql -h $T/pg -U tapeward tapeward" \
		"library:     $BIN/vtl status --socket $T/lib/vtl.sock" \
		"client:      filed web1 on 127.0.0.1:$FPORT backs up $T/sample (job web1-sample)" \
		"drive:       $BIN/tapekey drive status $DRIVE0_ADDR   (once storaged is stopped: it holds its drives)" \
		"logs:        $T/logs/" \
		"stop:        $T/stop.sh   (stops everything and removes $T)"
}

# wait_for WHAT SECONDS PID CMD...: run CMD until it succeeds; fail if PID
# exits or the time runs out.
wait_for() {
	local what=$1 secs=$2 pid=$3 n
	shift 3
	for ((n = 0; n < secs * 10; n++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if [ "$pid" != - ] && ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null && code=0 || code=$?
			die "$what exited (status $code) before it was ready"
		fi
		sleep 0.1
	done
	die "$what was not ready within ${secs}s"
}

# alive NAME PID: die unless the daemon still runs (its port might be another's).
alive() { kill -0 "$2" 2>/dev/null || die "$1 exited right after start"; }

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CMD...: run a daemon in the background, logging to logs/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$T/logs/$name.log" 2>&1 &
	PIDS+=("$name:$!")
	LAST_PID=$!
}

# ctl EXPLANATION COMMAND: explain, then run one console command.
ctl() {
	step "$1"
	printf '    $ tapectl "%s"\n' "$2"
	run_indented "tapectl \"$2\"" "$BIN/tapectl" -c "$T/tapectl.toml" "$2"
}

# ctl_refused WHY LINE: a command the director must refuse (exit 1); its
# explanation is shown; die if it succeeds.
ctl_refused() {
	local rc=0
	step "$1"
	printf '    $ tapectl "%s"\n' "$2"
	"$BIN/tapectl" -c "$T/tapectl.toml" "$2" 2>&1 | sed 's/^/    /' || rc=${PIPESTATUS[0]}
	[ "$rc" = 1 ] || die "tapectl \"$2\" was not refused (exit $rc)"
}

# run_indented WHAT CMD...: run CMD, its output indented; die if it fails.
run_indented() {
	local what=$1 rc=0
	shift
	"$@" 2>&1 | sed 's/^/    /' || rc=${PIPESTATUS[0]}
	[ "$rc" = 0 ] || die "$what failed (exit $rc)"
}

# ctl_out EXPLANATION COMMAND: as ctl, and keep the output in $OUT.
ctl_out() {
	local rc=0
	step "$1"
	printf '    $ tapectl "%s"\n' "$2"
	OUT=$("$BIN/tapectl" -c "$T/tapectl.toml" "$2" 2>&1) || rc=$?
	printf '%s\n' "$OUT" | sed 's/^/    /'
	[ "$rc" = 0 ] || die "tapectl \"$2\" failed (exit $rc)"
}

# jobid_of TEXT: the JobId a run command printed.
jobid_of() {
	printf '%s\n' "$1" | grep -oiE 'job ?id[^0-9]{0,3}[0-9]+' | head -n 1 | grep -oE '[0-9]+$' || true
}

# make_sample DIR: a small tree of large and small files, a symlink, a hard
# link and a long name.
make_sample() {
	local d=$1 i
	mkdir -p "$d/docs" "$d/src" "$d/photos"
	head -c $((24 << 20)) /dev/urandom >"$d/photos/holiday.raw"
	head -c $((3 << 20)) /dev/urandom >"$d/photos/cat.jpg"
	for i in $(seq -w 1 40); do
		head -c $((RANDOM % 4000 + 100)) /dev/urandom | base64 >"$d/src/file-$i.c"
	done
	printf 'Tapeward demo notes\n' >"$d/docs/notes.txt"
	printf 'remember the milk\n' >"$d/docs/todo.txt"
	ln -s ../docs/notes.txt "$d/src/NOTES"
	ln "$d/photos/cat.jpg" "$d/photos/cat-hardlink.jpg"
	printf 'a file whose name is longer than the 100 bytes of a tar header\n' \
		>"$d/docs/a-file-whose-name-is-longer-than-the-one-hundred-bytes-a-classic-tar-header-has-room-for-in-its-name-field.txt"
}

# ---------------------------------------------------------------------------

step "Build every binary (make build)"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
	make -C "$ROOT" --no-print-directory build BIN="$BIN" >/dev/null || die "make build failed (run it yourself to see why)"
	if [ ! -x "$BIN/filed" ]; then # a Makefile whose CMDS lacks tools/filed
		(cd "$ROOT" && GOTOOLCHAIN=${GOTOOLCHAIN:-auto} go build -o "$BIN/" ./tools/filed) || die "go build ./tools/filed failed"
	fi
fi
for b in director storaged tapectl tapekey vtl filed; do
	[ -x "$BIN/$b" ] || die "$BIN/$b was not built"
done
say "binaries in $BIN (build: $(elapsed)s)"

step "Find the PostgreSQL server programs"
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r) $(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)"); do
	if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
		PGBIN=$d
		break
	fi
done
[ -n "$PGBIN" ] || die "initdb/pg_ctl/postgres not found in /usr/lib/postgresql/*/bin or on \$PATH: apt-get install postgresql"
for p in createuser createdb; do
	[ -x "$PGBIN/$p" ] || command -v "$p" >/dev/null || die "$p not found (PostgreSQL client programs): apt-get install postgresql-client"
done
pgclient() { if [ -x "$PGBIN/$1" ]; then echo "$PGBIN/$1"; else command -v "$1"; fi; }
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || die "running as root, and PostgreSQL refuses root; the OS user postgres does not exist (apt-get install postgresql creates it)"
	if command -v runuser >/dev/null; then RUN_AS=(runuser -u postgres --); else RUN_AS=(su postgres -s /bin/sh -c '"$0" "$@"'); fi
fi
say "$PGBIN$([ "${#RUN_AS[@]}" -gt 0 ] && echo " (as OS user postgres, since we are root)")"

step "Check that ports $DPORT (director), $SPORT (storaged) and $FPORT (filed) are free"
[ "$DPORT" != "$SPORT" ] && [ "$FPORT" != "$DPORT" ] && [ "$FPORT" != "$SPORT" ] ||
	die "DEMO_DIRECTOR_PORT, DEMO_STORAGED_PORT and DEMO_FILED_PORT must differ ($DPORT, $SPORT, $FPORT)"
for p in "$DPORT" "$SPORT" "$FPORT"; do
	tcp_open "$p" && die "something already listens on 127.0.0.1:$p; set DEMO_DIRECTOR_PORT / DEMO_STORAGED_PORT / DEMO_FILED_PORT to free ports"
done

step "Make a temporary directory"
T=$(mktemp -d "${TMPDIR:-/tmp}/tapeward-demo.XXXXXX") || die "mktemp failed"
# Device addresses: the vtl's unix socket, or (ISCSI=1) its iSCSI target,
# where LUN 0 is the changer and LUN 1.. the drives.
if [ "$ISCSI" = 1 ]; then
	IQN="iqn.2026-12.io.tapeward:vtl"
	CHANGER_ADDR="iscsi://127.0.0.1:$IPORT/$IQN/0"
	DRIVE0_ADDR="iscsi://127.0.0.1:$IPORT/$IQN/1"
	DRIVE1_ADDR="iscsi://127.0.0.1:$IPORT/$IQN/2"
	VTL_ISCSI=(--iscsi "127.0.0.1:$IPORT")
else
	CHANGER_ADDR="vtl:$T/lib/vtl.sock#changer"
	DRIVE0_ADDR="vtl:$T/lib/vtl.sock#drive0"
	DRIVE1_ADDR="vtl:$T/lib/vtl.sock#drive1"
	VTL_ISCSI=()
fi
chmod 0711 "$T" # PostgreSQL (user postgres) must reach $T/pg; everything else in $T is private
mkdir -p "$T/logs" "$T/lib" "$T/storaged" "$T/pg" "$T/filed"
chmod 0700 "$T/logs" "$T/lib" "$T/storaged" "$T/filed"
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres: "$T/pg"
[ "${#T}" -lt 80 ] || die "$T is too long for a unix socket path; set TMPDIR=/tmp"
say "$T"

step "Start a private PostgreSQL (unix socket only, in $T/pg)"
"${RUN_AS[@]}" "$PGBIN/initdb" -D "$T/pg/data" -U postgres --auth=trust --no-sync --encoding=UTF8 --locale=C \
	>"$T/initdb.log" 2>&1 || { logtail "$T/initdb.log"; die "initdb failed"; }
touch "$T/logs/postgres.log"
[ "${#RUN_AS[@]}" -gt 0 ] && chown postgres: "$T/logs/postgres.log" && chmod 0711 "$T/logs"
PG_STARTED=1
"${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/logs/postgres.log" -w -t 20 \
	-o "-c listen_addresses= -c unix_socket_directories=$T/pg -c port=5432 -c fsync=off -c full_page_writes=off" \
	start >/dev/null || die "pg_ctl start failed"
"$(pgclient createuser)" -h "$T/pg" -U postgres tapeward || die "createuser tapeward failed"
"$(pgclient createdb)" -h "$T/pg" -U postgres -O tapeward tapeward || die "createdb tapeward failed"
say "database tapeward, owner tapeward, socket in $T/pg"

step "Make a key encryption key (tapekey kek new)"
run_indented "tapekey kek new" "$BIN/tapekey" kek new --out "$T/kek.key"

step "Make the certificates for mutual TLS (tapekey pki init)"
run_indented "tapekey pki init" "$BIN/tapekey" pki init --dir "$T/pki" --director director --storage sd1 --client web1 --console admin

DR_TOP="" DR_POOL="" DR_JOB=""
if [ "$DR" = 1 ]; then
	step "DR: make an escrow key pair (tapekey escrow new) and print its private half on paper"
	run_indented "tapekey escrow new" "$BIN/tapekey" escrow new --out "$T/escrow.key" --public "$T/escrow.pub"
	run_indented "tapekey escrow paper" "$BIN/tapekey" escrow paper "$T/escrow.key" --out "$T/escrow-paper.html"
	say "pool Offsite seals every volume key to $T/escrow.pub; the label on tape carries the envelope"
	DR_TOP="catalog_dump_dir = \"$T/catalog-dump\"
bootstrap_dir    = \"$T/bootstrap\"
pg_dump          = \"$(pgclient pg_dump)\""
	DR_POOL="escrow_public_key = \"$T/escrow.pub\""
	DR_JOB="
# The catalog backup (Bareos' BackupCatalog): pg_dump, backed up, then the bootstrap file.
[[job]]
name   = \"BackupCatalog\"
type   = \"Catalog\"
client = \"web1\"
pool   = \"Offsite\""
fi

step "Write the configs (absolute paths into $T)"
cat >"$T/director.toml" <<EOF
# Generated by tools/demo/demo.sh; see configs/director.toml for every key.
name   = "director"
listen = "127.0.0.1:$DPORT"
$DR_TOP

[tls]
ca   = "$T/pki/ca.crt"
cert = "$T/pki/director.crt"
key  = "$T/pki/director.key"

[catalog]
host     = "$T/pg"
port     = 5432
database = "tapeward"
user     = "tapeward"
sslmode  = "disable"

[keys]
[[keys.kek]]
file   = "$T/kek.key"
active = true

[[storage]]
name            = "sd1"
address         = "127.0.0.1:$SPORT"
tls_server_name = "sd1"

# The demo's console; roles: read, operator, keyadmin (see configs/director.toml).
[[console]]
name = "admin"
role = "keyadmin"

# The demo's client, what it backs up, where to, and the job.
[[client]]
name            = "web1"
address         = "127.0.0.1:$FPORT"
tls_server_name = "web1"

[[fileset]]
name    = "sample"
include = ["$T/sample"]

[[pool]]
name    = "Offsite"
storage = "sd1"
$DR_POOL

[[job]]
name    = "web1-sample"
client  = "web1"
fileset = "sample"
pool    = "Offsite"
$DR_JOB
EOF
cat >"$T/filed.toml" <<EOF
# Generated by tools/demo/demo.sh; see configs/filed.toml for every key.
name              = "web1"
listen            = "127.0.0.1:$FPORT"
working_directory = "$T/filed"

[tls]
ca   = "$T/pki/ca.crt"
cert = "$T/pki/web1.crt"
key  = "$T/pki/web1.key"

[director]
name = "director"
EOF
cat >"$T/storaged.toml" <<EOF
# Generated by tools/demo/demo.sh; see configs/storaged.toml for every key.
name              = "sd1"
listen            = "127.0.0.1:$SPORT"
working_directory = "$T/storaged"

[tls]
ca   = "$T/pki/ca.crt"
cert = "$T/pki/sd1.crt"
key  = "$T/pki/sd1.key"

[director]
name            = "director"
address         = "127.0.0.1:$DPORT"
tls_server_name = "director"

[keys]
[[keys.kek]]
file = "$T/kek.key"

[[changer]]
name    = "changer0"
address = "$CHANGER_ADDR"

[[drive]]
name        = "drive0"
address     = "$DRIVE0_ADDR"
changer     = "changer0"
drive_index = 0
media_type  = "LTO-6"

[[drive]]
name        = "drive1"
address     = "$DRIVE1_ADDR"
changer     = "changer0"
drive_index = 1
media_type  = "LTO-6"
EOF
cat >"$T/tapectl.toml" <<EOF
# Generated by tools/demo/demo.sh; see configs/tapectl.toml for every key.
name = "admin"

[director]
address         = "127.0.0.1:$DPORT"
tls_server_name = "director"

[tls]
ca   = "$T/pki/ca.crt"
cert = "$T/pki/admin.crt"
key  = "$T/pki/admin.key"
EOF
say "$T/director.toml" "$T/storaged.toml" "$T/tapectl.toml" "$T/filed.toml"

if [ "$ISCSI" = 1 ]; then
	step "Start the virtual tape library: 8 slots with barcoded cartridges, 2 LTO drives; also an iSCSI target on 127.0.0.1:$IPORT"
else
	step "Start the virtual tape library: 8 slots with barcoded cartridges, 2 LTO drives"
fi
start vtl "$BIN/vtl" serve --dir "$T/lib" --socket "$T/lib/vtl.sock" "${VTL_ISCSI[@]}" --slots 8 --drives 2 --capacity 256MiB --load-delay 50ms
wait_for "vtl" 10 "$LAST_PID" "$BIN/vtl" status --socket "$T/lib/vtl.sock"
say "vtl pid $LAST_PID, socket $T/lib/vtl.sock"
if [ "$ISCSI" = 1 ]; then
	wait_for "vtl iSCSI portal" 10 "$LAST_PID" tcp_open "$IPORT"
	say "iSCSI target $IQN on 127.0.0.1:$IPORT: storaged uses only these addresses (no kernel initiator, no /dev/sg):" \
		"changer $CHANGER_ADDR" "drive0  $DRIVE0_ADDR" "drive1  $DRIVE1_ADDR"
fi

step "Start the storage daemon sd1 (clears every drive's key at start)"
start storaged "$BIN/storaged" -c "$T/storaged.toml"
wait_for "storaged" 20 "$LAST_PID" tcp_open "$SPORT"
alive storaged "$LAST_PID"
say "storaged pid $LAST_PID, listening on 127.0.0.1:$SPORT"

step "Start the director (applies the catalog migrations at start)"
start director "$BIN/director" -c "$T/director.toml"
wait_for "director" 20 "$LAST_PID" tcp_open "$DPORT"
alive director "$LAST_PID"
say "director pid $LAST_PID, listening on 127.0.0.1:$DPORT"

ctl "Label slots 1-5 as encrypted volumes of pool Offsite. Per volume the director makes a
    random 256-bit key, wraps it under the KEK and commits it BEFORE storaged writes the
    label; storaged loads the key into the drive and checks the drive really encrypts." \
	"label storage=sd1 pool=Offsite slots=1-5 barcodes encrypt"

ctl "List the volumes: each has its key's KEK id and fingerprint, never the key." \
	"list volumes"

ctl "Mount the volume in slot 3 in drive 0: storaged fetches its wrapped key over mutual
    TLS, unwraps it, loads it into the drive and verifies the drive's status page." \
	"mount storage=sd1 slot=3 drive=0"

step "storaged holds its drives exclusively: tapekey may not send a command to drive 0 (nor clear its key)"
if out=$("$BIN/tapekey" drive status "$DRIVE0_ADDR" 2>&1); then
	die "tapekey opened drive 0 while storaged holds it"
fi
printf '%s\n' "$out" | sed 's/^/    /'

ctl "Storage daemon status: drives, what is loaded, key state." \
	"status storage=sd1"

ctl_refused "A key change is refused while the volume is mounted (its data would be stranded under
    a key the catalog no longer has): the director asks storaged first." \
	"update volume=TW0003L6 encrypt=rotate"

ctl "Unmount: storaged clears the key from the drive, then unloads the cartridge." \
	"unmount storage=sd1 drive=0"

step "The library's front panel (vtl status): drive 0 holds no key any more"
run_indented "vtl status" "$BIN/vtl" status --socket "$T/lib/vtl.sock"

ctl "Rotate the key of TW0004L6 (no data on it): the new key is committed, the label rewritten
    and verified; the old key moves to the volume's key history, never deleted." \
	"update volume=TW0004L6 encrypt=rotate"

ctl "Key events: every key created, fetched, loaded, cleared and superseded, with fingerprints only." \
	"list keyevents"

KEKID=$("$BIN/tapekey" kek id "$T/kek.key" 2>/dev/null | awk '{print $NF}' | head -n 1)
ctl "What depends on the KEK (before a KEK may be retired, this must say nothing does)." \
	"status kek=$KEKID"

step "Make a sample tree to back up: large and small files, a symlink, a hard link, a long name"
make_sample "$T/sample"
say "$(find "$T/sample" | wc -l) entries, $(du -sh "$T/sample" | cut -f1) in $T/sample"

step "Start the file daemon filed for client web1 (mutual TLS; accepts only the director)"
start filed "$BIN/filed" -c "$T/filed.toml"
wait_for "filed" 20 "$LAST_PID" tcp_open "$FPORT"
alive filed "$LAST_PID"
say "filed pid $LAST_PID, listening on 127.0.0.1:$FPORT"

ctl "What a Full of job web1-sample would take (filed walks the fileset, reads no data)." \
	"estimate job=web1-sample"

ctl_out "Back up: a Full of the sample tree. filed streams pax to storaged with a one-time
    session token; storaged writes it to an encrypted volume; the director records every
    file's exact tape address as storaged flushes. The job report follows." \
	"run job=web1-sample level=Full yes wait"
FULL=$(jobid_of "$OUT")
[ -n "$FULL" ] || die "the run command printed no JobId"

ctl "Every file of job $FULL with its volume, tape file, block and offset." \
	"list files jobid=$FULL"

step "Change the tree: modify docs/notes.txt, add docs/new.txt, delete src/file-03.c, rename photos/ to pictures/"
printf 'a line added after the Full\n' >>"$T/sample/docs/notes.txt"
printf 'a file made after the Full\n' >"$T/sample/docs/new.txt"
rm "$T/sample/src/file-03.c"
mv "$T/sample/photos" "$T/sample/pictures"
say "modified docs/notes.txt, added docs/new.txt, deleted src/file-03.c, renamed photos/ to pictures/
    (the renamed directory's files keep their mtime and ctime: older than the Full)"

ctl_out "An Incremental (the default level): only what changed since the Full started, and
    the deletion is recorded so a restore of the latest state will not bring it back." \
	"run job=web1-sample yes wait"
INC=$(jobid_of "$OUT")
[ -n "$INC" ] || die "the run command printed no JobId"
REPORT=$OUT

ctl_out "The Incremental's files: exactly the changed and added ones (and their directories), and
    the renamed directory's files: their times did not change, but the catalog has no rows for their
    new paths, so the director fetched them from the client after its walk." \
	"list files jobid=$INC"
for f in docs/notes.txt docs/new.txt pictures/holiday.raw pictures/cat.jpg; do
	printf '%s\n' "$OUT" | grep -qF "$f" || die "the Incremental does not list $f"
done
for f in src/file-01.c docs/todo.txt; do
	if printf '%s\n' "$OUT" | grep -qF "$f"; then die "the Incremental lists $f, which did not change"; fi
done
printf '%s\n%s\n' "$REPORT" "$OUT" | grep -qiE 'file-03\.c|delet' ||
	die "neither the Incremental's report nor its file list mentions the deletion of src/file-03.c"

ctl "The jobs so far." "list jobs job=web1-sample"

ctl "The plan of a restore of the Incremental's changes (without yes nothing runs): files,
    bytes, jobs used, volumes and their slots, restore client, where, replace." \
	"restore jobid=$INC directory=$T/sample/docs where=$T/restore-inc"

ctl "dryrun: what would be written where; nothing is written." \
	"restore jobid=$INC directory=$T/sample/docs where=$T/restore-inc dryrun"
[ ! -e "$T/restore-inc" ] || die "dryrun wrote $T/restore-inc"

ctl_out "Restore the Incremental's changes: storaged LOCATEs to each file's block, filed writes
    under where= (never outside it), to a temporary name, checks the SHA-256, then renames." \
	"restore jobid=$INC directory=$T/sample/docs where=$T/restore-inc yes wait"
for f in docs/notes.txt docs/new.txt; do
	cmp -s "$T/sample/$f" "$T/restore-inc$T/sample/$f" || die "the restored $f differs from the original"
done
say "docs/notes.txt and docs/new.txt restored and identical"

ctl_out "A full restore of the latest state (the Full and the Incremental, the deleted file left
    out) to a temporary directory." \
	"restore client=web1 current all where=$T/restore-all yes wait"
step "Compare the restored tree with the original (diff -r): identical"
diff -r "$T/sample" "$T/restore-all$T/sample" | sed 's/^/    /'
[ "${PIPESTATUS[0]}" = 0 ] || die "diff -r found differences between $T/sample and the restored tree"
[ ! -e "$T/restore-all$T/sample/src/file-03.c" ] || die "the deleted src/file-03.c was restored"
say "diff -r: no differences; src/file-03.c (deleted before the Incremental) not restored"

ctl "The restore jobs." "list jobs type=Restore"

if [ "$DR" = 1 ]; then
	ctl_out "DR: the director's own restore of the Full, to compare tapextract's with." \
		"restore jobid=$FULL all where=$T/restore-full yes wait"

	ctl_out "DR: the catalog backup job: pg_dump of the catalog, backed up like any job, then the
    bootstrap file (the dump's volumes and exact address, with their wrapped keys)." \
		"run job=BackupCatalog yes wait"
	[ -s "$T/bootstrap/catalog-latest.bsr" ] || die "the catalog job wrote no $T/bootstrap/catalog-latest.bsr"
	say "bootstrap: $T/bootstrap/catalog-latest.bsr (send it off-site; its wrapped keys are useless without the KEK)"

	step "DR: disaster — the director, storaged and filed are gone, the catalog database dropped"
	stop_daemons vtl
	"$(pgclient dropdb)" -h "$T/pg" -U postgres tapeward || die "dropdb tapeward failed"
	CACHE=$(ls "$T"/storaged/*cryptocache* 2>/dev/null | head -n 1)
	[ -n "$CACHE" ] || die "no crypto cache in $T/storaged"
	say "left: the tapes (vtl), storaged's crypto cache $CACHE, the KEK, the escrow paper, the bootstrap"
	LIB=(--changer "$CHANGER_ADDR")
	# A vtl socket's drive 0 is found from the changer's address; an iSCSI
	# drive is named (its LUN on the target).
	[ "$ISCSI" = 1 ] && LIB+=(--drive "$DRIVE0_ADDR")

	step "DR: what is on the tapes (tapextract volumes, from the labels and index files)"
	run_indented "tapextract volumes" "$BIN/tapextract" volumes "${LIB[@]}" --cache "$CACHE" --kek "$T/kek.key"

	step "DR: extract the Full with tapextract from tapes + crypto cache + KEK, compare (diff -r)"
	run_indented "tapextract extract" "$BIN/tapextract" extract --job "$FULL" --to "$T/dr-cache" "${LIB[@]}" --cache "$CACHE" --kek "$T/kek.key"
	diff -r "$T/restore-full$T/sample" "$T/dr-cache$T/sample" | sed 's/^/    /'
	[ "${PIPESTATUS[0]}" = 0 ] || die "tapextract's tree differs from the director's restore of job $FULL"
	say "diff -r: identical to the director's restore of job $FULL"

	step "DR: again with nothing but the escrow paper (typed back): no cache, no KEK"
	sed -n 's|^<div class="row">\(.*\)</div>$|\1|p' "$T/escrow-paper.html" | tr 'A-Z' 'a-z' >"$T/typed-paper.txt"
	chmod 0600 "$T/typed-paper.txt"
	say "typed back $(wc -l <"$T/typed-paper.txt") lines from the paper (lower case: case does not matter)"
	run_indented "tapextract extract --escrow-key" "$BIN/tapextract" extract --job "$FULL" --to "$T/dr-escrow" "${LIB[@]}" --escrow-key "$T/typed-paper.txt"
	diff -r "$T/restore-full$T/sample" "$T/dr-escrow$T/sample" | sed 's/^/    /'
	[ "${PIPESTATUS[0]}" = 0 ] || die "the escrow-key tree differs from the director's restore of job $FULL"
	say "diff -r: identical"

	step "DR: the catalog back from tape with its bootstrap (tapextract --bootstrap, then pg_restore)"
	run_indented "tapextract extract --bootstrap" "$BIN/tapextract" extract --bootstrap "$T/bootstrap/catalog-latest.bsr" --kek "$T/kek.key" --to "$T/dr-dump" "${LIB[@]}"
	DUMP=$(find "$T/dr-dump" -name '*.dump' -type f | head -n 1)
	[ -n "$DUMP" ] || die "tapextract --bootstrap extracted no dump under $T/dr-dump"
	"$(pgclient createdb)" -h "$T/pg" -U postgres -O tapeward tapeward || die "createdb tapeward failed"
	"$(pgclient pg_restore)" -h "$T/pg" -U tapeward -d tapeward --no-owner "$DUMP" 2>"$T/logs/pg_restore.log" ||
		{ logtail "$T/logs/pg_restore.log"; die "pg_restore of $DUMP failed"; }
	say "restored $DUMP into database tapeward"

	step "DR: start the director on the restored catalog"
	start director "$BIN/director" -c "$T/director.toml"
	wait_for "director" 20 "$LAST_PID" tcp_open "$DPORT"
	alive director "$LAST_PID"
	ctl_out "The jobs are back (the catalog job itself was running when dumped: the director ends it E)." \
		"list jobs"
	for id in "$FULL" "$INC"; do
		printf '%s\n' "$OUT" | grep -qE "^$id[[:space:]]" || die "job $id is not in the restored catalog"
	done
fi

if [ "$KEEP" != 1 ]; then
	step "Stop everything (storaged clears every drive's key on the way out)"
	stop_all
	say "stopped"
fi
FAILED_STEP=""
