/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * guest_abi.h - the simulated machine as a real guest kernel sees it.
 *
 * A QEMU guest attached to nh-sim-machine through an ivshmem-doorbell PCI
 * function (1af4:1110) is an OS node of the machine.  Its BAR2 is the
 * machine's whole shared memory: the NIC's registers, its MSI-X table and
 * PBA, its rings and buffers, the ownership record and the per-node slots,
 * exactly as the simulated kernels see them.  This header is the only thing
 * a guest driver (hook/simnic) needs to know about that memory: the machine
 * writes a directory of offsets (struct nh_sim_directory) at a fixed place,
 * and every structure a guest touches is described here with fixed field
 * offsets.  The C++ side (sim/machine_layout.h) static_asserts that its
 * structures match.
 *
 * Shared by C++ (user space) and kernel C: only fixed-width types, no
 * atomics; a kernel reader uses READ_ONCE/WRITE_ONCE and the ordering noted
 * per field, plus cmpxchg on the 64-bit words marked "CAS".
 *
 * Interrupts.  ivshmem vectors of a guest's function:
 *   NH_SIM_IVSHMEM_VEC_CONTROL  the machine wakes the guest (control events;
 *                               the fast path's armed doorbell);
 *   NH_SIM_IVSHMEM_VEC_NIC0+i   NIC MSI-X entry i, when the entry's message
 *                               names this node (see below).
 * A NIC MSI-X message reaches a guest like this: the machine's interrupt
 * fabric decodes the entry's address/data with the x86 codec, finds the node
 * that owns the destination APIC ID (machine APIC IDs, from the machine's
 * config, listed in the node's slot), and if that node is a guest, looks up
 * slot.guest_vector[data.vector]: a non-zero value v raises ivshmem vector
 * v - 1 of that guest (its eventfd; QEMU then sends the guest's own MSI-X
 * message).  The guest driver fills guest_vector[] for the x86 vectors it
 * has "installed" (the analogue of request_irq on a vector of its local APIC);
 * a message for a vector with no entry is counted spurious, as for simulated
 * kernels.  So rewriting the NIC's MSI-X entry (by the source's hook) is what
 * moves the interrupt to another guest: the same act as on real hardware.
 *
 * Doorbells from a guest to the machine: write the ivshmem Doorbell register
 * (BAR0 + 12) with (machine_peer_id << 16) | vector, where machine_peer_id is
 * in the directory; vector NH_SIM_MACHINE_VEC_DEVICE is an MMIO kick of the
 * NIC (tail registers, EIMS, MSI-X table writes), NH_SIM_MACHINE_VEC_CONTROL
 * reaches the machine's control logic.
 */
#ifndef NH_SIM_GUEST_ABI_H
#define NH_SIM_GUEST_ABI_H

#ifdef __KERNEL__
#include <linux/types.h>
typedef __u8 nh_u8;
typedef __u32 nh_u32;
typedef __u64 nh_u64;
typedef __s32 nh_s32;
#else
#include <stdint.h>
typedef uint8_t nh_u8;
typedef uint32_t nh_u32;
typedef uint64_t nh_u64;
typedef int32_t nh_s32;
#endif

/* The first 8 bytes of the shared memory: "NNHSMCH1" little endian. */
#define NH_SIM_MAGIC 0x3148434d53484e4eULL
/*
 * Bumped on any incompatible change of this header's structures.  A reserved
 * field given a meaning whose zero is the old behaviour is compatible (the
 * wire packet's flow: 0 is the only queue of NIC 0).
 */
#define NH_SIM_GUEST_ABI_VERSION 1
/* struct nh_sim_directory lives at this offset of BAR2. */
#define NH_SIM_DIRECTORY_OFFSET 0x40

/* The ivshmem-doorbell function the machine is reached through. */
#define NH_SIM_IVSHMEM_VENDOR 0x1af4
#define NH_SIM_IVSHMEM_DEVICE 0x1110
/* ivshmem BAR0 registers (docs/specs/ivshmem-spec.txt). */
#define NH_SIM_IVSHMEM_REG_INTRMASK 0x00
#define NH_SIM_IVSHMEM_REG_INTRSTATUS 0x04
#define NH_SIM_IVSHMEM_REG_IVPOSITION 0x08
#define NH_SIM_IVSHMEM_REG_DOORBELL 0x0c

/* Guest-side ivshmem vectors (the guest's function needs vectors >= 1 + entries). */
#define NH_SIM_IVSHMEM_VEC_CONTROL 0
#define NH_SIM_IVSHMEM_VEC_NIC0 1
/* Machine-side doorbell vectors. */
#define NH_SIM_MACHINE_VEC_DEVICE 0
#define NH_SIM_MACHINE_VEC_CONTROL 1
#define NH_SIM_MACHINE_VECTORS 2

/* x86 vectors below this are exceptions/reserved; never a device message. */
#define NH_SIM_FIRST_DEVICE_VECTOR 0x20

/*
 * struct nh_sim_directory - where everything is, written once by the machine
 * before any guest can connect (offsets are from the start of BAR2).
 */
struct nh_sim_directory {
	nh_u32 abi_version;		/* NH_SIM_GUEST_ABI_VERSION */
	nh_u32 node_count;		/* slots in use */
	nh_u32 max_nodes;
	nh_u32 node_stride;		/* bytes between node slots */
	nh_u64 nodes_offset;		/* slot 0 (struct nh_sim_node_view fields below) */
	nh_u32 machine_peer_id;		/* ivshmem peer id of the machine itself */
	nh_u32 nic_count;		/* NICs of the machine; a guest drives NIC 0 */
	/* NIC 0 (its queue 0: guests attach to one-queue machines only). */
	nh_u64 nic_bdf_offset;		/* NUL-terminated machine-wide BDF, 16 bytes */
	nh_u64 nic_config_offset;	/* PCI config space image, 4096 bytes */
	nh_u64 nic_msix_offset;		/* the MSI-X BAR: table at +0, PBA at +pba */
	nh_u32 nic_msix_pba_offset;	/* within the MSI-X BAR */
	nh_u32 nic_msix_entries;	/* table size */
	nh_u64 nic_regs_offset;		/* struct nh_sim_regs */
	nh_u64 nic_rx_ring_offset;	/* ring_size x struct nh_sim_desc */
	nh_u64 nic_tx_ring_offset;
	nh_u64 nic_rx_buf_offset;	/* ring_size x buf_size bytes, buffer i of desc i */
	nh_u64 nic_tx_buf_offset;
	nh_u32 nic_ring_size;		/* power of two */
	nh_u32 nic_buf_size;		/* bytes per packet buffer */
	nh_u64 nic_ownership_offset;	/* nh_u64 ownership word (CAS), see below */
	nh_u64 nic_handoff_offset;	/* struct nh_sim_handoff */
	nh_u64 nic_initialized_offset;	/* nh_u32: a driver set the rings up once */
	nh_u64 nic_running_node_offset;	/* nh_s32: node running the data path, or -1 */
	nh_u32 nic_other_entry;		/* MSI-X entry of link/"other" causes */
	nh_u32 nic_queue_entry;		/* MSI-X entry of queue 0 (TxRx) */
	nh_u64 cas_test_offset;		/* nh_u64 counter for the cross-guest CAS proof */
	nh_u8 nic_mac[8];		/* the NIC's MAC address (6 bytes used) */
	nh_u64 reserved[5];
};

/*
 * Per-node slot: these fields at these offsets from the slot's start
 * (nodes_offset + index * node_stride).
 */
#define NH_SIM_NODE_ID_OFFSET 0			/* char[64], NUL-terminated */
#define NH_SIM_NODE_ID_SIZE 64
#define NH_SIM_NODE_APIC_COUNT_OFFSET 64	/* nh_u32 */
#define NH_SIM_NODE_APIC_IDS_OFFSET 68		/* nh_u32[8] machine APIC IDs */
#define NH_SIM_NODE_MAX_APIC_IDS 8
/* Node kind and the guest's ivshmem peer id, set by the machine on connect. */
#define NH_SIM_NODE_KIND_OFFSET 100		/* nh_u32, enum nh_sim_node_kind */
#define NH_SIM_NODE_PEER_ID_OFFSET 104		/* nh_u32 ivshmem peer id */
/* nh_u8[256]: x86 vector -> ivshmem vector + 1 (0: no handler). */
#define NH_SIM_NODE_GUEST_VECTOR_OFFSET 128
/* nh_u64[256]: per x86 vector, messages the fabric delivered (like /proc/interrupts). */
#define NH_SIM_NODE_DELIVERED_OFFSET 384

enum nh_sim_node_kind {
	NH_SIM_NODE_NONE = 0,		/* nothing attached */
	NH_SIM_NODE_SIM_KERNEL = 1,	/* an nh-sim-kernel process */
	NH_SIM_NODE_GUEST = 2,		/* a QEMU guest through ivshmem */
};

/* The NIC's register file (struct DeviceRegisters on the C++ side). */
#define NH_SIM_REG_CTRL 0x00		/* u32: NH_SIM_CTRL_* */
#define NH_SIM_REG_RDH 0x04		/* u32: device owns RX [RDH, RDT) */
#define NH_SIM_REG_RDT 0x08
#define NH_SIM_REG_TDH 0x0c		/* u32: device owns TX [TDH, TDT) */
#define NH_SIM_REG_TDT 0x10
#define NH_SIM_REG_EIMS 0x14		/* u32: bit i = entry i may fire (auto-cleared on fire) */
#define NH_SIM_REG_EICR 0x18		/* u32: causes */
#define NH_SIM_REG_RX_PACKETS 0x20	/* u64 statistics */
#define NH_SIM_REG_RX_MISSED 0x28
#define NH_SIM_REG_TX_PACKETS 0x30
#define NH_SIM_REG_MSI_SENT 0x38
#define NH_SIM_REG_MSI_PENDED 0x40
#define NH_SIM_REG_MSI_REPLAYED 0x48
#define NH_SIM_REG_MSI_DISABLED 0x50
/* u64: TX frames of another ethertype than NH_SIM_ETHERTYPE, dropped. */
#define NH_SIM_REG_TX_FOREIGN_FRAMES 0x58
#define NH_SIM_CTRL_RX_ENABLE 0x1
#define NH_SIM_CTRL_TX_ENABLE 0x2

/* A descriptor: status (DD set by the device, release order) and length. */
struct nh_sim_desc {
	nh_u32 status;
	nh_u32 length;
};
#define NH_SIM_DESC_DONE 0x1

/*
 * The ownership word (CAS): bits 7:0 state, 15:8 owner/source node index,
 * 23:16 target node index, 63:24 epoch.
 */
#define NH_SIM_OWN_STATE(w) ((nh_u32)((w) & 0xff))
#define NH_SIM_OWN_OWNER(w) ((nh_u32)(((w) >> 8) & 0xff))
#define NH_SIM_OWN_TARGET(w) ((nh_u32)(((w) >> 16) & 0xff))
#define NH_SIM_OWN_EPOCH(w) ((w) >> 24)
#define NH_SIM_OWN_ACTIVE 1
#define NH_SIM_OWN_PREPARING 2
#define NH_SIM_OWN_HANDOFF 3

/*
 * Ring state beside the record, under a sequence lock (seq odd while being
 * written); struct HandoffSlot on the C++ side.
 */
#define NH_SIM_HANDOFF_SEQ 0x00		/* u32 */
#define NH_SIM_HANDOFF_EPOCH 0x08	/* u64 */
#define NH_SIM_HANDOFF_COUNT 0x10	/* u32 queues */
#define NH_SIM_HANDOFF_RX_NTC 0x14	/* u32 each */
#define NH_SIM_HANDOFF_RX_NTU 0x18
#define NH_SIM_HANDOFF_TX_NTC 0x1c
#define NH_SIM_HANDOFF_TX_NTU 0x20
#define NH_SIM_HANDOFF_OP_ID 0x28	/* u64: with EPOCH, the writer's fence */

/*
 * The wire.  The NIC is an Ethernet NIC: RX buffers hold whole frames and TX
 * buffers are sent as frames (up to nic_buf_size bytes, so an MTU of 1500
 * fits).  Its link partner is the machine's traffic peer, which speaks one
 * protocol: frames of ethertype NH_SIM_ETHERTYPE (IEEE local experimental)
 * from NH_SIM_WIRE_PEER_MAC to the NIC's MAC, whose payload starts with a
 * struct nh_sim_wire_packet.  A guest answers by sending the same payload
 * back (direction = NH_SIM_DIR_OUTBOUND, node = its node index); the peer
 * counts other frames it receives (e.g. IPv6 neighbour discovery) and drops
 * them.
 */
#define NH_SIM_ETHERTYPE 0x88b5
#define NH_SIM_WIRE_PEER_MAC { 0x02, 0x4e, 0x48, 0xff, 0xff, 0xfe }
#define NH_SIM_DIR_INBOUND 0
#define NH_SIM_DIR_OUTBOUND 1

/* Little endian, as on x86. */
struct nh_sim_wire_packet {
	nh_u64 seq;		/* per direction, from 1 */
	nh_u64 sent_ns;		/* CLOCK_MONOTONIC at the traffic peer */
	nh_u32 direction;	/* NH_SIM_DIR_* */
	nh_u32 node;		/* index of the node that carried it */
	nh_u32 flow;		/* RX/TX queue of a multi-queue NIC; 0 */
	nh_u32 reserved;
};

#endif /* NH_SIM_GUEST_ABI_H */
