/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The driver handover contract of the nichandover hook.
 *
 * A network driver that can hand its device to another OS node while it
 * runs implements these operations and registers the device with
 * nh_handover_register().  The hook module decides *when* (epochs, fencing,
 * the netlink API, the MSI-X rewrite); the driver decides *how* it stops and
 * starts its own engines, in its own order, under its own locks.  The module
 * never touches the driver's NAPI instances, queues or registers.
 *
 * The spirit is that of netdev_queue_mgmt_ops (ndo_queue_stop/start): the
 * driver owns its queues; the caller asks.  docs/hook.md describes the
 * contract for driver authors (and what e1000e or igb would need).
 *
 * Calling context: every op is called in process context, may sleep, never
 * with rtnl_lock held by the module, and never concurrently with another op
 * of the same device (the module serialises them with a per-device mutex).
 * A driver's own paths that stop its engines (ndo_stop, reset tasks, ethtool
 * ring changes, suspend) synchronise with the ops under the driver's own
 * lock; while the device is quiesced or on standby such paths must not
 * restart the engines (the driver keeps its own "handed over" state).
 */
#ifndef _NH_HANDOVER_H
#define _NH_HANDOVER_H

#include <linux/device.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/netlink.h>
#include <linux/types.h>

/**
 * struct nh_ring_state - where one queue pair's rings stopped
 * @queue: queue pair index
 * @rx_next_to_clean: next RX descriptor the driver would have cleaned
 * @rx_next_to_use: next RX descriptor the driver would have given the device
 * @tx_next_to_clean: next TX descriptor whose completion is due
 * @tx_next_to_use: next TX descriptor the driver would have filled
 */
struct nh_ring_state {
	u32 queue;
	u32 rx_next_to_clean;
	u32 rx_next_to_use;
	u32 tx_next_to_clean;
	u32 tx_next_to_use;
};

/**
 * struct nh_msi_msg - one MSI/MSI-X message
 * @address: message address (x86: 0xfee00000 | destination APIC ID << 12)
 * @data: message data (x86: the vector in bits 7:0)
 */
struct nh_msi_msg {
	u64 address;
	u32 data;
};

struct nh_handover_dev;

/**
 * struct nh_commit_ops - optional: what a kernel commit needs on the machine
 * @cas_record: compare-and-swap the NIC's ownership record word in the
 *	memory the nodes' kernels share: store @desired iff it holds
 *	@expected; *@found is what it held (@expected iff the swap won).  The
 *	words are the machine's own encoding: the hook compares them only for
 *	equality.  0, or a negative errno when the record cannot be reached.
 * @write_rings: write @rings beside the record for the target, fenced by
 *	(@epoch, @op_id) as the machine's other writers fence theirs.
 * @read_rings: the rings written beside the record at @epoch (at most @max);
 *	the number read, or -ENOENT when none were written for @epoch.
 * @ring_doorbell: interrupt the kernel of the node that @handoff (the HANDOFF
 *	word the hook's CAS just wrote) names as the target, on the vector
 *	reserved for doorbells, so that it looks at this NIC's record.
 *	-EOPNOTSUPP when that node cannot be rung (its kernel has no doorbell
 *	vector); the handover then commits through the daemons.
 *
 * All four are called in process context with the device's lock held; none
 * may sleep for long (they are the blackout).  A driver provides all four or
 * none; a driver without them has no kernel commit path (ARM and HANDOFF
 * answer -EOPNOTSUPP).  The driver's doorbell interrupt handler calls
 * nh_handover_doorbell().
 */
struct nh_commit_ops {
	int (*cas_record)(struct nh_handover_dev *hd, u64 expected, u64 desired,
			  u64 *found);
	int (*write_rings)(struct nh_handover_dev *hd, u64 epoch, u64 op_id,
			   const struct nh_ring_state *rings, unsigned int n);
	int (*read_rings)(struct nh_handover_dev *hd, u64 epoch,
			  struct nh_ring_state *rings, unsigned int max);
	int (*ring_doorbell)(struct nh_handover_dev *hd, u64 handoff);
};

/**
 * struct nh_handover_ops - what a driver implements to be handed over live
 * @quiesce: stop transmitting (the queues), stop the RX and TX engines, let
 *	in-flight work finish (TX completions reaped, RX descriptors the device
 *	completed delivered to the stack), disable the device's data-path
 *	interrupt causes, and write the ring state of each queue pair into
 *	@rings (at most @max_rings); return the number written or a negative
 *	errno.  Bounded by @timeout_ms: on -ETIMEDOUT the driver must have undone
 *	what it did (the device runs as before).  Only called on a running device.
 * @resume: undo a completed quiesce: restart the engines and the queues.
 * @release: another node now owns the device: go to standby.  Never touch
 *	the rings, registers or interrupt causes again until @attach; keep the
 *	netdev registered (carrier unchanged, queues stopped); give up the
 *	vectors it ran on (a later @reserve_vectors starts afresh).  Must not
 *	fail.
 * @attach: this node owns the device from now on: import @rings (as written
 *	by another node's @quiesce), take the data-path interrupts, deliver what
 *	the device completed meanwhile, and run.  @rings is empty when the
 *	device was never initialised (first owner: set the rings up).
 * @reserve_vectors: target side: install handlers for the device's MSI-X
 *	entries 0..@n-1 on this node and write into @msgs the messages that
 *	reach them (the device's source node writes these into its table).
 *	-ENOSPC when this node has too few free vectors.
 * @unreserve_vectors: give a reservation back (nothing happens if none).
 * @read_config: optional: the device's PCI config space as the machine sees
 *	it, for devices whose struct device is not their PCI function; bytes
 *	copied or a negative errno.
 */
struct nh_handover_ops {
	int (*quiesce)(struct nh_handover_dev *hd, struct nh_ring_state *rings,
		       unsigned int max_rings, unsigned int timeout_ms,
		       struct netlink_ext_ack *extack);
	int (*resume)(struct nh_handover_dev *hd, struct netlink_ext_ack *extack);
	void (*release)(struct nh_handover_dev *hd);
	int (*attach)(struct nh_handover_dev *hd,
		      const struct nh_ring_state *rings, unsigned int n_rings,
		      struct netlink_ext_ack *extack);
	int (*reserve_vectors)(struct nh_handover_dev *hd, struct nh_msi_msg *msgs,
			       unsigned int n, struct netlink_ext_ack *extack);
	void (*unreserve_vectors)(struct nh_handover_dev *hd);
	int (*read_config)(struct nh_handover_dev *hd, unsigned int offset,
			   void *buf, unsigned int len);
};

/**
 * enum nh_handover_start - the device's state when it is registered
 * @NH_HANDOVER_START_RUNNING: this node owns and runs the device
 * @NH_HANDOVER_START_STANDBY: another node owns it; the driver is on standby
 */
enum nh_handover_start {
	NH_HANDOVER_START_RUNNING,
	NH_HANDOVER_START_STANDBY,
};

/**
 * struct nh_handover_dev - a device registered for live handover
 * @id: the machine-wide PCI name of the NIC ("0000:03:00.0"); for a plain
 *	PCI driver pci_name() of its function
 * @netdev: the device's net_device (registered before this is registered)
 * @dev: the device the driver is bound to (its driver module is pinned while
 *	the module holds the device quiesced or released; pm_runtime is held)
 * @ops: the driver's operations
 * @commit_ops: optional (NULL: no kernel commit path): the record, the
 *	rings beside it and the doorbell (struct nh_commit_ops)
 * @msix_table: the NIC's MSI-X table, when it is not @dev's own PCI MSI-X
 *	table (a device reached through a window, as the simulated NIC is):
 *	the module masks, rewrites, reads back and unmasks entries there
 * @msix_entries: entries in @msix_table
 * @queue_count: queue pairs
 * @start: the state the driver is in at registration (the ownership
 *	record decides it, never the driver alone)
 * @priv: the driver's own pointer
 * @hook_private: owned by the hook module; the driver never touches it
 */
struct nh_handover_dev {
	const char *id;
	struct net_device *netdev;
	struct device *dev;
	const struct nh_handover_ops *ops;
	const struct nh_commit_ops *commit_ops;
	void __iomem *msix_table;
	unsigned int msix_entries;
	unsigned int queue_count;
	enum nh_handover_start start;
	void *priv;
	void *hook_private;
};

int nh_handover_register(struct nh_handover_dev *hd);
void nh_handover_unregister(struct nh_handover_dev *hd);
void nh_handover_doorbell(struct nh_handover_dev *hd, u64 epoch);

#endif /* _NH_HANDOVER_H */
