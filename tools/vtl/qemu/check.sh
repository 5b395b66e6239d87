#!/bin/bash
# make qemu-check: the vtl's iSCSI target judged the way Linux hosts use a
# tape library, by two QEMU guests booting the same initramfs (guest
# /init: tools/vtl/qemu/init):
#  1. qemu-driver: the changer (LUN 0) and drive 0 (LUN 1) come through
#     QEMU's iSCSI block driver (libiscsi) with SCSI pass-through
#     (virtio-scsi + scsi-generic);
#  2. open-iscsi: the guest's own kernel initiator (iscsid, iscsiadm,
#     iscsi_tcp) discovers the target and logs in over QEMU user
#     networking, then logs in to a second vtl that requires CHAP (no
#     authentication, a wrong secret and a wrong user refused; the right
#     one with CRC32C digests works; an idle session is kept alive; mutual
#     CHAP with the target's secret works, with a wrong one the initiator
#     refuses the target).
# In both the guest kernel's st, sg and ch drivers attach the units and
# Debian's own tools drive them: mtx, mt (mt-st), stenc, sg3-utils,
# tapeinfo/loaderinfo, dd and GNU tar — devices and INQUIRY, mtx
# status/load/unload, mt status (density 0x5A)/rewind/offline, stenc
# setting a key and status, dd and tar written and read back encrypted,
# reading refused without the key (07/74/01), mixed mode, fixed 512-byte
# blocks (mt setblk), and the same data back.
#
# Needs on the host: qemu-system-x86 qemu-block-extra busybox-static (and
# Go). The guests' kernel and tools are Debian 12 packages fetched with
# apt-get download into a cache (~75 MB once). No KVM is needed (TCG,
# ~2 minutes); KVM=1 uses /dev/kvm. IDLE=SECONDS (default 12) is how long
# the CHAP session sits idle. Not part of `make test`: it downloads a
# kernel and boots VMs.
#
# Exit status: 0 when every check passed, 1 when one failed, 2 when the
# rig could not be set up. The guests' consoles: $WORK/guest-*.log; the
# vtls' command traces: $WORK/vtl*.log.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/tapeward-qemu.XXXXXX)}
CACHE=${TAPEWARD_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tapeward-qemu}
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
mkdir -p "$WORK" "$CACHE/debs" || exit 2
echo "qemu-check: work directory $WORK"

missing=
for c in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static apt-get:apt dpkg-deb:dpkg; do
	command -v "${c%%:*}" >/dev/null || missing="$missing ${c#*:}"
done
[ -e /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so ] || missing="$missing qemu-block-extra"
if [ -n "$missing" ]; then
	echo "qemu-check: missing host packages; install them with: apt-get install$missing" >&2
	exit 2
fi

echo "== vtl"
(cd "$repo" && go build -o "$WORK/vtl" ./tools/vtl) || exit 2

echo "== guest packages (Debian 12, cached in $CACHE/debs)"
cd "$CACHE/debs" || exit 2
if ! ls linux-image-*-amd64_*.deb >/dev/null 2>&1; then
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$kpkg" ] || { echo "qemu-check: apt-cache knows no linux-image-amd64 (apt-get update?)" >&2; exit 2; }
	apt-get download "$kpkg" stenc mt-st mtx sg3-utils libsgutils2-1.46-2 || exit 2
fi
if ! ls open-iscsi_*.deb libisns0_*.deb libopeniscsiusr_*.deb >/dev/null 2>&1; then
	apt-get download open-iscsi libisns0 libopeniscsiusr || exit 2
fi
x=$WORK/x
mkdir -p "$x"
for d in *.deb; do dpkg-deb -x "$d" "$x" || exit 2; done
cd "$WORK" || exit 2
kv=$(ls "$x/lib/modules" | head -1)
kd=$x/lib/modules/$kv/kernel

echo "== initramfs (kernel $kv)"
r=$WORK/root
rm -rf "$r"
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,lib/modules/$kv,lib64,proc,sys,dev,tmp,var/log,etc}
cp "$(command -v busybox)" "$r/bin/busybox"
for a in $("$r/bin/busybox" --list); do [ -e "$r/bin/$a" ] || ln -s busybox "$r/bin/$a"; done
rm -f "$r/bin/mt" "$r/bin/tar" # the real ones are in /usr/bin
# Dependency order (each .ko's depends=; the .deb has no modules.dep).
mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net
	crc32c_generic libcrc32c scsi_common scsi_mod virtio_scsi st sg ch scsi_transport_iscsi libiscsi libiscsi_tcp iscsi_tcp"
for m in $mods; do
	f=$(find "$kd" -name "$m.ko" | head -1)
	[ -n "$f" ] || { echo "qemu-check: kernel $kv has no module $m" >&2; exit 2; }
	cp "$f" "$r/lib/modules/$kv/"
done
bins="$x/usr/bin/stenc $x/bin/mt-st $x/usr/sbin/mtx $x/usr/sbin/tapeinfo $x/usr/sbin/loaderinfo $x/usr/bin/sg_raw $x/usr/bin/sg_inq $(command -v tar) $(command -v dd) $x/sbin/iscsid $x/sbin/iscsiadm"
for b in $bins; do cp "$b" "$r/usr/bin/" || exit 2; done
mv "$r/usr/bin/mt-st" "$r/usr/bin/mt"
mv "$r/usr/bin/iscsid" "$r/usr/bin/iscsiadm" "$r/usr/sbin/"
for b in $bins; do
	LD_LIBRARY_PATH=$x/usr/lib/x86_64-linux-gnu ldd "$b" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'
done | sort -u | while read -r l; do
	[ -f "$l" ] || continue
	case $l in
	"$x"/*) mkdir -p "$r/usr/lib/x86_64-linux-gnu" && cp -L "$l" "$r/usr/lib/x86_64-linux-gnu/" ;;
	*) mkdir -p "$r$(dirname "$l")" && cp -L "$l" "$r$l" ;;
	esac
done
cp -L /lib64/ld-linux-x86-64.so.2 "$r/lib64/"
install -m 755 "$here/init" "$r/init"
(cd "$r" && find . | bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$WORK/initrd.gz" || exit 2
cp "$x/boot/vmlinuz-$kv" "$WORK/vmlinuz" || exit 2

# vtl NAME [ARGS…]: a vtl serving its own library on ${ADDR:-127.0.0.1:0}
# (its trace in $WORK/vtl-NAME.log); sets portal and target once it listens.
pids=
trap 'kill $pids 2>/dev/null; wait $pids 2>/dev/null' EXIT
vtl() {
	local name=$1 log=$WORK/vtl-$1.log line
	shift
	"$WORK/vtl" serve --dir "$WORK/lib-$name" --socket "$WORK/vtl-$name.sock" --iscsi "${ADDR:-127.0.0.1:0}" \
		--load-delay 0s --trace "$@" 2>"$log" &
	pids="$pids $!"
	for _ in $(seq 100); do
		line=$(grep -o 'iscsi=[^ ]* iscsi_target=[^ ]*' "$log" | head -1)
		if [ -n "$line" ]; then
			portal=${line#iscsi=}
			portal=${portal%% *}
			target=${line##*iscsi_target=}
			return 0
		fi
		kill -0 "$!" 2>/dev/null || break
		sleep 0.1
	done
	echo "qemu-check: vtl $name did not start its iSCSI target:" >&2
	cat "$log" >&2
	exit 2
}

accel="-machine accel=tcg"
[ "${KVM:-0}" = 1 ] && accel="-enable-kvm -cpu host"
# guest NAME QEMU-ARGS…: boots the initramfs, console in $WORK/guest-NAME.log.
guest() {
	local name=$1
	shift
	echo "== guest $name (qemu $accel)"
	timeout 300 qemu-system-x86_64 $accel -m 1024 -smp 2 -nographic -no-reboot \
		-kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" "$@" \
		</dev/null 2>&1 | tr -d '\r' >"$WORK/guest-$name.log"
	echo "qemu exited ${PIPESTATUS[0]}"
}

vtl plain
d="driver=iscsi,transport=tcp,portal=$portal,target=$target,initiator-name=iqn.2026-12.io.tapeward.test:qemu-guest"
guest qemu-driver -net none -append "console=ttyS0 panic=-1 quiet mode=qemu-driver" \
	-device virtio-scsi-pci,id=scsi0 \
	-drive "if=none,id=changer,lun=0,$d" -device scsi-generic,drive=changer,bus=scsi0.0 \
	-drive "if=none,id=tape0,lun=1,$d" -device scsi-generic,drive=tape0,bus=scsi0.0

# The open-iscsi guest reaches the host's 127.0.0.1 as 10.0.2.2 (slirp).
chapuser=backup chapsecret=vtl-chap-secret-42
printf '%s\n' "$chapsecret" >"$WORK/chap.secret"
targetuser=vtl-target targetsecret=vtl-target-secret-7
printf '%s\n' "$targetsecret" >"$WORK/chap-target.secret"
vtl chap --iscsi-chap-user "$chapuser" --iscsi-chap-secret-file "$WORK/chap.secret" \
	--iscsi-chap-target-user "$targetuser" --iscsi-chap-target-secret-file "$WORK/chap-target.secret"
cport=${portal##*:}
# The guest reaches this vtl as 10.0.2.2: it must advertise that address
# with its port, so it is restarted on the port it was given.
vtl probe
kill "${pids##* }"
wait "${pids##* }" 2>/dev/null
ADDR=$portal vtl open-iscsi --iscsi-advertise "10.0.2.2:${portal##*:}"
guest open-iscsi -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
	-append "console=ttyS0 panic=-1 quiet mode=open-iscsi vtlport=${portal##*:} vtliqn=$target chapport=$cport chapuser=$chapuser chapsecret=$chapsecret targetuser=$targetuser targetsecret=$targetsecret idle=${IDLE:-12}"

echo "== results"
status=0 passed=0 failed=0
for g in qemu-driver open-iscsi; do
	log=$WORK/guest-$g.log
	sed -n "s/^\(RESULT\|NOTE\) /$g: &/p" "$log"
	if ! grep -q '^ALLDONE' "$log"; then
		echo "qemu-check: guest $g did not finish; its console: $log" >&2
		tail -20 "$log" >&2
		status=1
	fi
	f=$(grep -c '^RESULT .* FAIL' "$log") p=$(grep -c '^RESULT .* PASS' "$log")
	if [ "$p" -lt 25 ]; then
		echo "qemu-check: guest $g ran $p passing checks, fewer than the 25 of its tape checks; its console: $log" >&2
		status=1
	fi
	failed=$((failed + f)) passed=$((passed + p))
done
if [ "$failed" != 0 ]; then
	echo "qemu-check: $failed of $((failed + passed)) checks failed; the guests' consoles: $WORK/guest-*.log, the vtls' traces: $WORK/vtl-*.log" >&2
	exit 1
fi
[ $status = 0 ] || exit 1
echo "qemu-check: all $passed checks passed"
