/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * nichandover_genl.h - the "nichandover" generic netlink family.
 *
 * Shared by the kernel module and its user-space clients: only
 * <linux/types.h> is needed, so it can be included from C++ as is.
 *
 * Every request names a PCI function (NH_ATTR_PCI_DEV, "0000:03:00.0").
 * Requests that change the data path or the interrupt routing carry the
 * handover epoch (NH_ATTR_EPOCH); the module refuses an epoch lower than
 * the highest it has seen for that function with -ESTALE.  Errors are a
 * negative errno in the netlink ack, with an extack message.
 *
 * Every successful request is answered with a message of the same command
 * carrying the function's status (state, epoch, counters).  READ_MSI and
 * REROUTE add the interrupt messages (NH_ATTR_MSI_LIST, and for REROUTE the
 * replaced ones in NH_ATTR_MSI_PREVIOUS).
 */
#ifndef _UAPI_NICHANDOVER_GENL_H
#define _UAPI_NICHANDOVER_GENL_H

#include <linux/types.h>

#define NH_GENL_NAME "nichandover"
#define NH_GENL_VERSION 1

/* Room for "dddd:bb:dd.f" and then some. */
#define NH_PCI_DEV_LEN 32
/* Upper bound of NH_ATTR_TIMEOUT_MS. */
#define NH_TIMEOUT_MS_MAX 600000

enum nh_cmd {
	NH_CMD_UNSPEC,
	/* Close the gates, drain, disable NAPI, mask the vectors. */
	NH_CMD_QUIESCE,
	/* The exact reverse of QUIESCE. */
	NH_CMD_RESUME,
	/* Target side: start running the function at this epoch. */
	NH_CMD_ATTACH,
	/* Source side: the function now belongs to another node; stay gated. */
	NH_CMD_RELEASE,
	/* Read the MSI/MSI-X messages programmed in the device. */
	NH_CMD_READ_MSI,
	/* Move the interrupts (NH_ATTR_REROUTE_MODE says how). */
	NH_CMD_REROUTE,
	/* State, epoch and counters; no epoch needed. */
	NH_CMD_STATUS,
	/* Dump: every device the module knows (contract drivers and PCI
	 * functions it holds), one message each.  No epoch, no PCI_DEV.
	 */
	NH_CMD_LIST,
	/* Target side: reserve NH_ATTR_VECTOR_COUNT vectors on this node for
	 * the device's MSI-X entries 0..n-1 (contract drivers only); the reply's
	 * NH_ATTR_MSI_LIST holds the messages that reach them.
	 */
	NH_CMD_RESERVE,
	/* Target side: give a reservation back (no-op without one). */
	NH_CMD_UNRESERVE,
	/* Operator: take a RELEASED device back at a higher epoch (the record
	 * says this node owns it again); the device stays quiesced until RESUME.
	 */
	NH_CMD_RECLAIM,

	__NH_CMD_MAX,
	NH_CMD_MAX = __NH_CMD_MAX - 1,
};

enum nh_attr {
	NH_ATTR_UNSPEC,
	NH_ATTR_PAD,
	NH_ATTR_PCI_DEV,		/* string, request */
	NH_ATTR_EPOCH,			/* u64, request; reply: highest seen */
	NH_ATTR_TIMEOUT_MS,		/* u32, QUIESCE: drain deadline */
	NH_ATTR_STATE,			/* u32, enum nh_state (reply) */
	NH_ATTR_IFNAME,			/* string (reply) */
	NH_ATTR_IFINDEX,		/* u32 (reply) */
	NH_ATTR_HELD_XMITS,		/* u64: skbs queued while gated */
	NH_ATTR_XMITS_WHILE_QUIESCED,	/* u64: ndo_start_xmit calls while gated, must be 0 */
	NH_ATTR_POLLS_WHILE_QUIESCED,	/* u64: NAPI polls while disabled, must be 0 */
	NH_ATTR_DRAINED_TX_BYTES,	/* u64: BQL in-flight bytes at the gate */
	NH_ATTR_DRAINED_TX_PACKETS,	/* u64: tx_packets delta during the drain */
	NH_ATTR_DRAINED_RX_PACKETS,	/* u64: NAPI work during the drain */
	NH_ATTR_BQL_INFLIGHT,		/* u64: BQL in-flight bytes now */
	NH_ATTR_NAPI_COUNT,		/* u32: NAPI instances disabled */
	NH_ATTR_VECTORS_MASKED,		/* u32: vectors masked */
	NH_ATTR_QUIESCE_NS,		/* u64: duration of the last QUIESCE */
	NH_ATTR_MSI_MODE,		/* u32, enum nh_msi_mode (reply) */
	NH_ATTR_MSI_LIST,		/* nested array of NH_MSI_ATTR_* */
	NH_ATTR_MSI_PREVIOUS,		/* nested array, REROUTE reply */
	NH_ATTR_REROUTE_MODE,		/* u32, enum nh_reroute_mode */
	NH_ATTR_TARGET_CPU,		/* u32, REROUTE affinity mode */
	NH_ATTR_RINGS,			/* nested array of NH_RING_ATTR_*: QUIESCE reply, ATTACH request */
	NH_ATTR_HANDOVER_MODE,		/* u32, enum nh_handover_mode (reply) */
	NH_ATTR_VECTOR_COUNT,		/* u32, RESERVE request */
	NH_ATTR_CONFIG,			/* binary: PCI config space (LIST reply, contract devices) */
	NH_ATTR_VENDOR_ID,		/* u16 (LIST reply) */
	NH_ATTR_DEVICE_ID,		/* u16 (LIST reply) */
	NH_ATTR_DRIVER,			/* string: bound driver (LIST reply) */
	NH_ATTR_QUEUE_COUNT,		/* u32: queue pairs (LIST/STATUS reply) */

	__NH_ATTR_MAX,
	NH_ATTR_MAX = __NH_ATTR_MAX - 1,
};

/* One vector inside NH_ATTR_MSI_LIST / NH_ATTR_MSI_PREVIOUS. */
enum nh_msi_attr {
	NH_MSI_ATTR_UNSPEC,
	NH_MSI_ATTR_PAD,
	NH_MSI_ATTR_INDEX,		/* u32: MSI-X table entry / MSI vector */
	NH_MSI_ATTR_ADDRESS,		/* u64: message address */
	NH_MSI_ATTR_DATA,		/* u32: message data */
	NH_MSI_ATTR_MASKED,		/* u8: vector control mask bit (reply) */
	NH_MSI_ATTR_IRQ,		/* u32: Linux irq number (reply) */
	NH_MSI_ATTR_CPU,		/* u32: effective CPU (reply); affinity target (request) */

	__NH_MSI_ATTR_MAX,
	NH_MSI_ATTR_MAX = __NH_MSI_ATTR_MAX - 1,
};

/* One queue pair's ring state inside NH_ATTR_RINGS. */
enum nh_ring_attr {
	NH_RING_ATTR_UNSPEC,
	NH_RING_ATTR_QUEUE,		/* u32 */
	NH_RING_ATTR_RX_NEXT_TO_CLEAN,	/* u32 */
	NH_RING_ATTR_RX_NEXT_TO_USE,	/* u32 */
	NH_RING_ATTR_TX_NEXT_TO_CLEAN,	/* u32 */
	NH_RING_ATTR_TX_NEXT_TO_USE,	/* u32 */

	__NH_RING_ATTR_MAX,
	NH_RING_ATTR_MAX = __NH_RING_ATTR_MAX - 1,
};

/* How the module hands a device over (docs/hook.md). */
enum nh_handover_mode {
	NH_HANDOVER_MODE_UNSPEC,
	/* The driver implements struct nh_handover_ops: live, ring state kept. */
	NH_HANDOVER_MODE_CONTRACT,
	/* Safe mode for other drivers: gate and drain at the qdisc, then the
	 * driver's own close and unbind (RELEASE); the target binds (ATTACH).
	 */
	NH_HANDOVER_MODE_COLD,
};

enum nh_state {
	NH_STATE_UNSPEC,
	NH_STATE_RUNNING,	/* gates open, NAPI enabled, vectors unmasked */
	NH_STATE_GATED,		/* TX gated but the drain did not finish */
	NH_STATE_QUIESCED,	/* gated, drained, NAPI disabled, vectors masked */
	NH_STATE_RELEASED,	/* quiesced and handed to another node */
	NH_STATE_STANDBY,	/* contract driver bound, another node owns the device */
};

enum nh_msi_mode {
	NH_MSI_MODE_NONE,
	NH_MSI_MODE_MSI,
	NH_MSI_MODE_MSIX,
};

enum nh_reroute_mode {
	NH_REROUTE_UNSPEC,
	/* Within one kernel: ask the kernel for a vector on the target CPU
	 * (irq_set_affinity) and verify the resulting messages.
	 */
	NH_REROUTE_AFFINITY,
	/* Across kernels: write the given messages raw, mask -> write ->
	 * read back -> compare -> restore the mask bit.
	 */
	NH_REROUTE_RAW,
};

#endif /* _UAPI_NICHANDOVER_GENL_H */
