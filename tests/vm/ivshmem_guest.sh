# shellcheck shell=bash disable=SC2034
# Sourced library: QEMU guests attached to the simulated machine as OS nodes
# through ivshmem-doorbell (docs/simulator.md, "QEMU guests"). The machine
# must run first: `nh-sim-machine run --path P --ivshmem-dir DIR` listens on
# DIR/<node>.sock, and QEMU reads its setup from that socket while it creates
# the device.
#
#   ivshmem_guest_image OUT_DIR [tools/build-vm-image args: --bin F, --module KO,
#                                --scenario NAME=SCRIPT]...
#       builds OUT_DIR/vmlinuz and OUT_DIR/initramfs.cpio.gz (log: OUT_DIR.log)
#   ivshmem_guest_boot NODE SOCKET IMAGE_DIR LOG [KERNEL ARGS...]
#       boots a guest on node NODE in the background (console -> LOG) with
#       nh_node=NODE on its kernel command line (add nh_scenario=NAME to run
#       a scenario); sets IVSHMEM_GUEST_PID. QEMU arguments in the array
#       IVSHMEM_GUEST_EXTRA (e.g. a management NIC) are added. Its ivshmem function is 00:01.0
#       with IVSHMEM_GUEST_VECTORS vectors: 0 control, 1 + i NIC MSI-X entry i.
#   ivshmem_guest_wait LOG PATTERN SECONDS
#       waits until LOG has a line matching PATTERN (grep -E); 1 on timeout.
#
# Needs NH_ROOT (the source tree, for tools/build-vm-image). The CPU options
# make guest CAS atomic against the host and other guests (measured in
# tests/vm/cas_vm_test.sh): multi-threaded TCG, and a machine with more than
# one possible CPU, because QEMU translates atomics as atomics (CF_PARALLEL)
# only when max_cpus > 1. NH_IVSHMEM_ACCEL and NH_IVSHMEM_SMP override them.
IVSHMEM_GUEST_VECTORS=6  # 1 + the NIC's 5 MSI-X entries (guest_abi.h)
IVSHMEM_GUEST_ACCEL=${NH_IVSHMEM_ACCEL:-tcg,thread=multi}
IVSHMEM_GUEST_SMP=${NH_IVSHMEM_SMP:-1,maxcpus=2}
IVSHMEM_GUEST_PID=
IVSHMEM_GUEST_EXTRA=()

ivshmem_guest_image() {
  local out=$1
  shift
  "$NH_ROOT/tools/build-vm-image" --out "$out" "$@" >"$out.log" 2>&1
}

ivshmem_guest_boot() {
  local node=$1 socket=$2 image=$3 log=$4 i
  shift 4
  for ((i = 0; i < 300; i++)); do
    [ -S "$socket" ] && break
    sleep 0.1
  done
  [ -S "$socket" ] || { echo "ivshmem_guest_boot: no socket $socket" >&2; return 1; }
  qemu-system-x86_64 -machine q35 -accel "$IVSHMEM_GUEST_ACCEL" -smp "$IVSHMEM_GUEST_SMP" \
    -m 256M -nodefaults -display none -no-reboot -no-user-config \
    -kernel "$image/vmlinuz" -initrd "$image/initramfs.cpio.gz" \
    -append "console=ttyS0 panic=-1 quiet nh_node=$node $*" \
    -chardev "file,id=con,path=$log" -serial chardev:con \
    -chardev "socket,id=ivsh,path=$socket" \
    -device "ivshmem-doorbell,chardev=ivsh,vectors=$IVSHMEM_GUEST_VECTORS,addr=01.0" \
    "${IVSHMEM_GUEST_EXTRA[@]}" \
    </dev/null >>"$log.qemu" 2>&1 &
  IVSHMEM_GUEST_PID=$!
}

ivshmem_guest_wait() {
  local log=$1 pattern=$2 seconds=$3 i
  for ((i = 0; i < seconds * 5; i++)); do
    grep -qE "$pattern" "$log" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
