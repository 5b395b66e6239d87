#!/bin/bash
# make qemu-check: the vtl's iSCSI target judged the way a Linux host uses
# a tape library. A QEMU guest gets the changer (LUN 0) and drive 0 (LUN 1)
# through QEMU's iSCSI block driver (libiscsi) with SCSI pass-through
# (virtio-scsi + scsi-generic); the guest kernel's st, sg and ch drivers
# attach them and Debian's own tools drive them: mtx, mt (mt-st), stenc,
# sg3-utils, dd and GNU tar. Checks (guest /init, tools/vtl/qemu/init):
# devices and INQUIRY, mtx status/load/unload, mt status (density 0x5A)/
# rewind/offline, stenc setting a key, status, dd and tar written and
# read back encrypted, reading refused without the key (07/74/01), mixed
# mode, fixed 512-byte blocks (mt setblk), and the same data back.
#
# Needs on the host: qemu-system-x86 qemu-block-extra busybox-static (and
# Go). The guest's kernel and tools are Debian 12 packages fetched with
# apt-get download into a cache (~70 MB once). No KVM is needed (TCG, ~1
# minute); KVM=1 uses /dev/kvm. Not part of `make test`: it downloads a
# kernel and boots a VM.
#
# Exit status: 0 when every check passed, 1 when one failed, 2 when the
# rig could not be set up. The guest's console: $WORK/guest.log; the
# vtl's command trace: $WORK/vtl.log.
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
mods="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci scsi_common scsi_mod virtio_scsi st sg ch"
for m in $mods; do
	f=$(find "$kd" -name "$m.ko" | head -1)
	[ -n "$f" ] || { echo "qemu-check: kernel $kv has no module $m" >&2; exit 2; }
	cp "$f" "$r/lib/modules/$kv/"
done
bins="$x/usr/bin/stenc $x/bin/mt-st $x/usr/sbin/mtx $x/usr/sbin/tapeinfo $x/usr/sbin/loaderinfo $x/usr/bin/sg_raw $x/usr/bin/sg_inq $(command -v tar) $(command -v dd)"
for b in $bins; do cp "$b" "$r/usr/bin/" || exit 2; done
mv "$r/usr/bin/mt-st" "$r/usr/bin/mt"
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

echo "== vtl serve --iscsi"
"$WORK/vtl" serve --dir "$WORK/lib" --socket "$WORK/vtl.sock" --iscsi 127.0.0.1:0 --load-delay 0s --trace 2>"$WORK/vtl.log" &
vtl=$!
trap 'kill $vtl 2>/dev/null; wait $vtl 2>/dev/null' EXIT
portal= iqn=
for _ in $(seq 100); do
	line=$(grep -o 'iscsi=[^ ]* iscsi_target=[^ ]*' "$WORK/vtl.log" | head -1)
	if [ -n "$line" ]; then
		portal=${line#iscsi=}; portal=${portal%% *}; iqn=${line##*iscsi_target=}
		break
	fi
	kill -0 $vtl 2>/dev/null || break
	sleep 0.1
done
[ -n "$portal" ] || { echo "qemu-check: the vtl did not start its iSCSI target:" >&2; cat "$WORK/vtl.log" >&2; exit 2; }
echo "portal $portal, target $iqn"

accel="-machine accel=tcg"
[ "${KVM:-0}" = 1 ] && accel="-enable-kvm -cpu host"
echo "== qemu ($accel)"
d="driver=iscsi,transport=tcp,portal=$portal,target=$iqn,initiator-name=iqn.2026-12.io.tapeward.test:qemu-guest"
timeout 300 qemu-system-x86_64 $accel -m 1024 -smp 2 -nographic -no-reboot -net none \
	-kernel "$WORK/vmlinuz" -initrd "$WORK/initrd.gz" -append "console=ttyS0 panic=-1 quiet" \
	-device virtio-scsi-pci,id=scsi0 \
	-drive "if=none,id=changer,lun=0,$d" -device scsi-generic,drive=changer,bus=scsi0.0 \
	-drive "if=none,id=tape0,lun=1,$d" -device scsi-generic,drive=tape0,bus=scsi0.0 \
	</dev/null 2>&1 | tr -d '\r' >"$WORK/guest.log"
echo "qemu exited ${PIPESTATUS[0]}"

echo "== results"
grep -E '^(RESULT|NOTE)' "$WORK/guest.log"
if ! grep -q '^ALLDONE' "$WORK/guest.log"; then
	echo "qemu-check: the guest did not finish; its console: $WORK/guest.log" >&2
	tail -20 "$WORK/guest.log" >&2
	exit 1
fi
failed=$(grep -c '^RESULT .* FAIL' "$WORK/guest.log")
passed=$(grep -c '^RESULT .* PASS' "$WORK/guest.log")
if [ "$failed" != 0 ]; then
	echo "qemu-check: $failed of $((failed + passed)) checks failed; the guest's console: $WORK/guest.log, the vtl's trace: $WORK/vtl.log" >&2
	exit 1
fi
echo "qemu-check: all $passed checks passed"
