#!/bin/bash
# boot.sh KERNEL-VERSION LOG -- CMD...
#
# Boots Debian's kernel KERNEL-VERSION (e.g. 6.1.0-56-amd64) under qemu and
# runs CMD in it as root, with the host's / shared read-only over 9p under a
# tmpfs overlay (writes work and vanish), in the caller's directory. CMD's
# stdout and stderr go to LOG; the guest's kernel log goes to LOG.console.
# Exits with CMD's status, or 125 when the guest gave none (boot failure,
# panic, timeout).
#
# The kernel package is fetched with `apt-get download` into
# $TCPLENS_KERNELS_DIR (default /tmp/tcplens-kernels) and unpacked there;
# nothing is installed into /boot or /lib/modules.
#
# Environment: TCPLENS_KERNELS_DIR, TCPLENS_KERNELS_CPUS (vCPUs, default 2),
# TCPLENS_KERNELS_MEM (default 3G), TCPLENS_KERNELS_TIMEOUT (seconds, default
# 1800), TCPLENS_KERNELS_ACCEL (auto|kvm|tcg). Variables named TCPLENS_* pass
# into the guest, and the guest gets TCPLENS_EMULATION=tcg when qemu emulates
# the CPU in software, so timing-sensitive tests know their clock is slow.
set -euo pipefail

die() { echo "boot.sh: $*" >&2; exit 125; }
[ $# -ge 4 ] && [ "$3" = -- ] || die "usage: boot.sh KERNEL-VERSION LOG -- CMD..."
KVER=$1 LOG=$2; shift 3

DIR=${TCPLENS_KERNELS_DIR:-/tmp/tcplens-kernels}
CPUS=${TCPLENS_KERNELS_CPUS:-2}
MEM=${TCPLENS_KERNELS_MEM:-3G}
TIMEOUT=${TCPLENS_KERNELS_TIMEOUT:-2400}
ACCEL=${TCPLENS_KERNELS_ACCEL:-auto}
BUSYBOX=/bin/busybox
for t in qemu-system-x86_64 depmod xz cpio gzip apt-get dpkg-deb; do
	command -v $t >/dev/null || die "missing $t (apt-get install qemu-system-x86 busybox-static kmod xz-utils cpio)"
done
# The initramfs has no libc: busybox must be the static build.
[ -x $BUSYBOX ] && ! ldd $BUSYBOX >/dev/null 2>&1 || die "$BUSYBOX missing or not static (apt-get install busybox-static)"

# ---- the kernel: fetched once, kept unpacked --------------------------------
VMLINUZ=$DIR/root/boot/vmlinuz-$KVER
MODS=$DIR/root/lib/modules/$KVER
if [ ! -f "$VMLINUZ" ] || [ ! -d "$MODS" ]; then
	mkdir -p "$DIR/debs" "$DIR/root"
	echo "boot.sh: fetching linux-image-$KVER" >&2
	(cd "$DIR/debs" && apt-get download -q "linux-image-$KVER" >&2) || die "apt-get download linux-image-$KVER failed"
	dpkg-deb -x "$DIR/debs/linux-image-${KVER}"_*.deb "$DIR/root" || die "unpack linux-image-$KVER"
fi
[ -s "$MODS/modules.dep" ] || depmod -b "$DIR/root" "$KVER" || die "depmod $KVER"

# ---- initramfs: static busybox, the modules that mount the host's / --------
# Rebuilt when this script changes, so the init below and the image agree.
INITRD=$DIR/initrd-$KVER-$(sha1sum "$0" | cut -c1-12).cpio.gz
if [ ! -s "$INITRD" ]; then
	T=$(mktemp -d "$DIR/initrd.XXXXXX")
	mkdir -p "$T/bin" "$T/mods" "$T/proc" "$T/sys" "$T/dev" "$T/lower" "$T/rw" "$T/newroot"
	cp $BUSYBOX "$T/bin/busybox"
	n=0
	for m in virtio_pci 9pnet_virtio 9p overlay; do
		line=$(grep -E "(^|/)$m\.ko(\.xz|\.zst|\.gz)?:" "$MODS/modules.dep" || true)
		[ -n "$line" ] || continue # built into the kernel
		# Dependencies come after the colon, deepest last: load in reverse.
		for f in $(echo ${line#*:} | tr ' ' '\n' | tac) ${line%%:*}; do
			base=$(basename "$f"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
			ls "$T/mods/"*"-$base" >/dev/null 2>&1 && continue
			n=$((n + 1)); out=$T/mods/$(printf %02d $n)-$base
			case $f in
			*.xz) xz -dc "$MODS/$f" >"$out" ;;
			*.zst) zstd -dqc "$MODS/$f" >"$out" ;;
			*.gz) gzip -dc "$MODS/$f" >"$out" ;;
			*) cp "$MODS/$f" "$out" ;;
			esac
		done
	done
	cat >"$T/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
fail() { echo "tcplens-init: $*"; echo TCPLENS_GUEST_EXIT=125; echo b >/proc/sysrq-trigger; sleep 30; }
for a in $(cat /proc/cmdline); do case $a in tl.*=*) k=${a%%=*}; eval "${k#tl.}='${a#*=}'";; esac; done
# In dependency order; a second pass catches an order modules.dep did not give.
for pass in 1 2 3; do for m in /mods/*.ko; do [ -e "$m" ] && insmod "$m" 2>/dev/null && rm "$m"; done; done
for m in /mods/*.ko; do [ -e "$m" ] && fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /lower || fail "mount host / over 9p"
mount -t tmpfs -o mode=755 rw /rw && mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "overlay on host /"
R=/newroot
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
mount -t tmpfs -o mode=755 run $R/run
mount -t bpf bpf $R/sys/fs/bpf
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
# The kernel's modules (veth, sch_ingress, ...) load on demand from the unpacked package.
mkdir -p $R/lib/modules/$(uname -r) && mount --bind $R$mods $R/lib/modules/$(uname -r)
echo /sbin/modprobe >/proc/sys/kernel/modprobe
hostname tcplens-guest; ip link set lo up
umount /proc /sys /dev 2>/dev/null
exec switch_root $R /bin/sh -c ". '$cmd'"
INIT
	chmod +x "$T/init"
	(cd "$T" && find . | cpio -o -H newc --quiet | gzip -1) >"$INITRD.tmp" && mv "$INITRD.tmp" "$INITRD"
	rm -rf "$T"
fi

# ---- acceleration -------------------------------------------------------------
# A /dev/kvm without VT-x/AMD-V underneath (a paravirtual KVM, as on these CI
# machines) hangs stock kernels in early boot: emulate the CPU (TCG) there.
if [ "$ACCEL" = auto ]; then
	if [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
fi
CPU=max; [ "$ACCEL" = kvm ] && CPU=host

# ---- the script the guest runs ----------------------------------------------
RUN=$(mktemp -d "$DIR/run.XXXXXX")
trap 'rm -rf "$RUN"' EXIT
{
	echo 'export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8'
	for v in $(compgen -e | grep -E '^TCPLENS_' || true); do printf 'export %s=%q\n' "$v" "${!v}"; done
	[ "$ACCEL" = tcg ] && echo 'export TCPLENS_EMULATION=tcg'
	printf 'cd %q || exit 1\n' "$PWD"
	echo 'stty -F /dev/ttyS1 raw -echo 2>/dev/null'
	printf '(%s) </dev/null >/dev/ttyS1 2>&1\n' "$(printf '%q ' "$@")"
	# The status goes on the console, after the output port has drained.
	echo 'rc=$?; sleep 0.5; echo "TCPLENS_GUEST_EXIT=$rc" >/dev/ttyS0; sleep 0.5; echo b >/proc/sysrq-trigger; sleep 30'
} >"$RUN/cmd.sh"

# A guest that crashes stops at once (panic=-1, -no-reboot), a soft lockup
# included (softlockup_panic: a 6.1 guest once spun in ksoftirqd on both
# CPUs for 20 minutes, until the timeout); loglevel=5 puts the stack dumps
# of warnings and lockups on the console, whose log run.sh prints.
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot \
	-machine q35,accel="$ACCEL" -cpu $CPU -smp "$CPUS" -m "$MEM" \
	-kernel "$VMLINUZ" -initrd "$INITRD" \
	-append "console=ttyS0 loglevel=5 panic=-1 softlockup_panic=1 watchdog_thresh=30 rdinit=/init tl.cmd=$RUN/cmd.sh tl.mods=$MODS" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-serial file:"$LOG.console" -serial file:"$LOG" </dev/null
qrc=$?
set -e
rc=$(sed -n 's/.*TCPLENS_GUEST_EXIT=\([0-9]*\).*/\1/p' "$LOG.console" | tail -1)
if [ -z "$rc" ]; then
	why="qemu exited with $qrc: the guest kernel crashed or rebooted"
	[ "$qrc" = 124 ] && why="timed out after ${TIMEOUT}s"
	echo "boot.sh: $KVER gave no exit status ($why); guest kernel log: $LOG.console" >&2
	exit 125
fi
exit "$rc"
