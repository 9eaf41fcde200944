/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * The "nichandover" generic netlink family.
 *
 * Shared by the kernel module and its user-space clients: only
 * <linux/types.h> is needed, so it can be included from C++ as is.
 *
 * Every request names a device (NH_ATTR_PCI_DEV, "0000:03:00.0"): a device
 * whose driver registered it through the handover contract (nh_handover.h;
 * NH_HANDOVER_MODE_CONTRACT), else the PCI function of that name (the safe
 * mode, NH_HANDOVER_MODE_COLD).  Devices are looked up in the requester's
 * network namespace.  Every command needs CAP_NET_ADMIN; a raw REROUTE
 * also CAP_SYS_RAWIO.
 *
 * Requests that change a device carry the handover epoch (NH_ATTR_EPOCH,
 * at most U64_MAX - 1): one lower than the device's highest is refused
 * with -ESTALE before anything changes; the epoch becomes the highest only
 * when the change is made.  A request may also carry the daemon's operation
 * id (NH_ATTR_OP_ID, growing per node across daemon restarts): at the
 * device's highest epoch, one lower than the highest accepted is refused
 * with -ESTALE too (a late call of a crashed or retried daemon instance).
 * Without it the epoch alone fences the request, as before.  Errors are a
 * negative errno in the netlink ack, with an extack message.
 *
 * Every successful request is answered with a message of the same command
 * carrying the device's status.  READ_MSI and REROUTE add the interrupt
 * messages (NH_ATTR_MSI_LIST, and for REROUTE the replaced ones in
 * NH_ATTR_MSI_PREVIOUS); a contract QUIESCE adds NH_ATTR_RINGS.
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
	/* Contract: the driver stops its engines and reports its rings.
	 * Cold: gate TX at the qdisc and drain.  A no-op when quiesced.
	 */
	NH_CMD_QUIESCE,
	/* Undo a quiesce (a reclaimed device: start it). */
	NH_CMD_RESUME,
	/* Target side: run the device at this epoch (contract: the driver
	 * imports NH_ATTR_RINGS; cold: bind the driver).  A released device
	 * needs an epoch higher than the one it was released at.
	 */
	NH_CMD_ATTACH,
	/* Source side: the device now belongs to another node (contract: the
	 * driver goes to standby; cold: the driver's close and unbind).  It
	 * stays released until ATTACH or RECLAIM.
	 */
	NH_CMD_RELEASE,
	/* Read the MSI/MSI-X messages programmed in the device. */
	NH_CMD_READ_MSI,
	/* Move the interrupts (NH_ATTR_REROUTE_MODE says how).  RAW only on
	 * a device quiesced or released by this node at exactly this epoch.
	 */
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
	/* Kernel commit path (docs/hook.md), devices whose driver has
	 * struct nh_commit_ops (else -EOPNOTSUPP).  Target side, after
	 * RESERVE at this epoch: when the doorbell rings and the record is
	 * exactly NH_ATTR_RECORD_EXPECTED (the HANDOFF word), CAS it to
	 * NH_ATTR_RECORD_DESIRED (ACTIVE of this node) and attach alone.
	 * UNRESERVE, ATTACH and RECLAIM disarm.
	 */
	NH_CMD_ARM,
	/* Source side, the one call: QUIESCE, a raw REROUTE to NH_ATTR_MSI_LIST
	 * (read back), the rings beside the record, CAS of the record from
	 * NH_ATTR_RECORD_EXPECTED (PREPARING) to NH_ATTR_RECORD_DESIRED
	 * (HANDOFF), the target's doorbell, then RELEASE.  Needs CAP_SYS_RAWIO
	 * as a raw REROUTE.  The reply carries NH_ATTR_HANDOFF_STAGE,
	 * NH_ATTR_RECORD (what the CAS found), NH_ATTR_RINGS and
	 * NH_ATTR_MSI_PREVIOUS.  An error leaves the device as far as it got
	 * (quiesced, rerouted): the caller reads the record and reconciles.
	 */
	NH_CMD_HANDOFF,
	/* The event log of the kernel commit path: the events after
	 * NH_ATTR_EVENT_SEQ in NH_ATTR_EVENTS, NH_ATTR_EVENT_SEQ = the newest.
	 * With NH_ATTR_TIMEOUT_MS, waits that long for one when there is none
	 * (interruptible, no lock held).  No PCI_DEV, no epoch.
	 */
	NH_CMD_EVENTS,

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
	NH_ATTR_HELD_XMITS,		/* u64: skbs waiting in the qdiscs now */
	/* The next five are no longer sent (the module takes no NAPI and
	 * masks no vector; there are no tracepoint probes): absent means 0.
	 */
	NH_ATTR_XMITS_WHILE_QUIESCED,	/* u64 */
	NH_ATTR_POLLS_WHILE_QUIESCED,	/* u64 */
	NH_ATTR_DRAINED_TX_BYTES,	/* u64: cold: BQL in-flight bytes at the gate */
	NH_ATTR_DRAINED_TX_PACKETS,	/* u64 */
	NH_ATTR_DRAINED_RX_PACKETS,	/* u64 */
	NH_ATTR_BQL_INFLIGHT,		/* u64: BQL in-flight bytes now */
	NH_ATTR_NAPI_COUNT,		/* u32 */
	NH_ATTR_VECTORS_MASKED,		/* u32 */
	NH_ATTR_QUIESCE_NS,		/* u64: duration of the last QUIESCE */
	NH_ATTR_MSI_MODE,		/* u32, enum nh_msi_mode (reply) */
	NH_ATTR_MSI_LIST,		/* nested array of NH_MSI_ATTR_* */
	NH_ATTR_MSI_PREVIOUS,		/* nested array, REROUTE reply */
	NH_ATTR_REROUTE_MODE,		/* u32, enum nh_reroute_mode */
	NH_ATTR_TARGET_CPU,		/* u32, REROUTE affinity mode */
	/* nested array of NH_RING_ATTR_*: QUIESCE reply, ATTACH request */
	NH_ATTR_RINGS,
	NH_ATTR_HANDOVER_MODE,		/* u32, enum nh_handover_mode (reply) */
	NH_ATTR_VECTOR_COUNT,		/* u32, RESERVE request (1..2048); EPOCH optional */
	NH_ATTR_CONFIG,			/* binary: config space (LIST, contract) */
	NH_ATTR_VENDOR_ID,		/* u16 (LIST reply) */
	NH_ATTR_DEVICE_ID,		/* u16 (LIST reply) */
	NH_ATTR_DRIVER,			/* string: bound driver (LIST reply) */
	NH_ATTR_QUEUE_COUNT,		/* u32: queue pairs (LIST/STATUS reply) */
	/*
	 * u64, optional beside EPOCH: the daemon's operation id (see above);
	 * in replies, the highest accepted at the device's epoch
	 */
	NH_ATTR_OP_ID,
	/* u64 ownership record words, the machine's encoding (ARM, HANDOFF) */
	NH_ATTR_RECORD_EXPECTED,
	NH_ATTR_RECORD_DESIRED,
	NH_ATTR_RECORD,			/* u64: HANDOFF reply: what the CAS found */
	NH_ATTR_HANDOFF_STAGE,		/* u32, enum nh_handoff_stage (reply) */
	/* u8 (reply): the driver has struct nh_commit_ops (STATUS, LIST) */
	NH_ATTR_KERNEL_COMMIT,
	NH_ATTR_ARMED_EPOCH,		/* u64 (reply): 0 when not armed */
	NH_ATTR_DOORBELLS_IGNORED,	/* u64 (reply): doorbells that did not commit */
	NH_ATTR_EVENT_SEQ,		/* u64, EVENTS: request: after; reply: newest */
	NH_ATTR_EVENTS,			/* nested array of NH_EVENT_ATTR_* (reply) */

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

/* One event inside NH_ATTR_EVENTS. */
enum nh_event_attr {
	NH_EVENT_ATTR_UNSPEC,
	NH_EVENT_ATTR_PAD,
	NH_EVENT_ATTR_SEQ,		/* u64, from 1 per module load */
	NH_EVENT_ATTR_KIND,		/* u32, enum nh_event_kind */
	NH_EVENT_ATTR_PCI_DEV,		/* string */
	NH_EVENT_ATTR_EPOCH,		/* u64 */
	NH_EVENT_ATTR_RECORD,		/* u64: the record as the kernel left or found it */
	NH_EVENT_ATTR_REASON,		/* string: why not committed */

	__NH_EVENT_ATTR_MAX,
	NH_EVENT_ATTR_MAX = __NH_EVENT_ATTR_MAX - 1,
};

enum nh_event_kind {
	NH_EVENT_UNSPEC,
	/* The armed kernel won HANDOFF -> ACTIVE and runs the device. */
	NH_EVENT_COMMITTED,
	/* Rung, but not committed: not armed, record not the armed HANDOFF,
	 * CAS lost, or the attach failed (the arm stays unless the CAS won).
	 */
	NH_EVENT_NOT_COMMITTED,
};

/* How far a HANDOFF got, in order. */
enum nh_handoff_stage {
	NH_HANDOFF_NOTHING,
	NH_HANDOFF_QUIESCED,
	NH_HANDOFF_REROUTED,
	NH_HANDOFF_RINGS_WRITTEN,
	NH_HANDOFF_HANDED_OFF,		/* the CAS won: the commit point */
	NH_HANDOFF_DOORBELL_RUNG,
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
	NH_STATE_RUNNING,	/* runs on this node (or unbound, never held) */
	NH_STATE_GATED,		/* a QUIESCE is in progress */
	NH_STATE_QUIESCED,	/* stopped and held by this node (reclaimed: not started) */
	NH_STATE_RELEASED,	/* handed to another node at the device's epoch */
	NH_STATE_STANDBY,	/* contract driver registered on standby: another node owns it */
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
	 * read back -> compare -> restore the mask bit (a contract device's
	 * MSI-X window stays masked until the target's ATTACH).  Only x86
	 * non-remappable addresses, fixed/lowest-priority edge messages with
	 * vectors 0x20 up to the system vectors.
	 */
	NH_REROUTE_RAW,
};

#endif /* _UAPI_NICHANDOVER_GENL_H */
