#!/bin/sh
# /scenarios/cas of tests/vm/cas_vm_test.sh: this guest's part of the
# cross-guest CAS proof. Kernel command line: nh_node=NAME
# nh_cas_participants=P nh_cas_seconds=S.
arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
echo "cas_guest: $(arg nh_node) starts, $(nproc) CPU(s) online"
cas_counter --ivshmem --participants "$(arg nh_cas_participants)" \
  --seconds "$(arg nh_cas_seconds)" --label "$(arg nh_node)"
rc=$?
# A doorbell to the machine's control vector: the machine counts it.
cas_counter --ivshmem --ring 1
echo "cas_guest: done rc=$rc"
