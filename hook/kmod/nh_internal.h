/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared state of the nichandover hook module.
 *
 * Locking (docs/hook.md, "Locks"), outermost first:
 *  - nh_dev.lock: one mutex per device; every request that changes a
 *    device, and the contract's register/unregister, hold it for the whole
 *    operation, waits included.  Requests on different devices run in
 *    parallel (the family is parallel_ops); STATUS and LIST never take it.
 *  - rtnl_lock: taken only for short sections (find the interface, close or
 *    open the TX gate); never held across a wait or a driver's unbind.
 *  - nh_devs_lock: the registry list; a leaf (the netdevice notifier takes
 *    it under rtnl).
 * @gated_dev is written under rtnl and read under RCU: the notifier clears
 * it before the interface is freed (unregister waits for a grace period
 * after the notifier).
 */
#ifndef _NH_INTERNAL_H
#define _NH_INTERNAL_H

#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/netlink.h>
#include <linux/pci.h>
#include <linux/types.h>
#include <linux/workqueue.h>

#include "nh_handover.h"
#include "nichandover_genl.h"

/* The standard header and the capability list of a PCI function. */
#define NH_CONFIG_LEN 256

/**
 * struct nh_dev - one device the module knows, in either handover mode
 * @node: entry in the registry (entries live until module unload: the
 *	epoch of a device must outlive its driver)
 * @id: machine-wide PCI name, the registry key
 * @lock: serialises the operations on this device
 * @hd: contract device (NULL: cold mode on the PCI function named @id);
 *	written under @lock, read under RCU by STATUS and LIST (unregister
 *	waits for a grace period before the driver may free it)
 * @state: enum nh_state; written under @lock, read locklessly
 * @max_epoch: highest epoch of a request that changed the device
 * @max_op_id: highest operation id accepted at @max_epoch (0: none carried
 *	one); at that epoch a request with a lower one is a late call; written
 *	under @lock, read locklessly by STATUS and LIST
 * @released_epoch: the epoch of the RELEASE that handed the device away; only
 *	a higher one may ATTACH it here again (a RESERVE at the new owner's
 *	epoch comes first and raises @max_epoch to it)
 * @reclaimed: RECLAIM took the device back; RESUME starts it (cold: binds
 *	the driver; contract: attaches with the rings of the last quiesce)
 * @gated_dev: cold mode: the interface whose TX gate is closed
 * @gate_lost: the notifier found the gated interface going down
 * @abandon_work: drops a quiesce whose interface went away
 * @held: holds taken while quiesced or released (module, driver, runtime PM)
 * @driver_module: the driver module pinned while held
 * @pm_dev: the device whose runtime PM usage count is held
 * @saved_override: cold RELEASE: the function's driver_override before it
 *	was pointed at no driver; restored by ATTACH/RESUME
 * @rings: contract: ring state of the last quiesce
 * @n_rings: entries in @rings
 * @reserved_vectors: contract: vectors reserved by RESERVE
 * @drained_tx_bytes: cold mode: BQL in-flight bytes when the gate closed
 * @quiesce_ns: duration of the last successful QUIESCE
 * @queue_count: contract: queue pairs
 * @vendor: contract: PCI vendor ID (from @config)
 * @device: contract: PCI device ID (from @config)
 * @driver: contract: the registering driver's name
 * @config: contract: PCI config space as ops->read_config gave it at
 *	registration and after each operation
 * @config_len: bytes in @config (0: the driver has no read_config)
 * @reserved_epoch: contract: the epoch of the RESERVE in force
 * @armed_epoch: kernel commit path: ARM's epoch (0: not armed); written
 *	under @lock, read locklessly by STATUS
 * @armed_op_id: ARM's operation id, the fence the commit takes over
 * @armed_handoff: the record word ARM waits for (HANDOFF(S, here, e1))
 * @armed_active: the word the commit CASes it to (ACTIVE(here, e1))
 * @doorbell_epoch: epoch the last doorbell carried (set in hard IRQ)
 * @doorbells_ignored: doorbells that did not commit
 * @commit_work: the commit a doorbell schedules (nh_commit_work)
 */
struct nh_dev {
	struct list_head node;
	char id[NH_PCI_DEV_LEN];
	struct mutex lock; /* serialises the device's operations */
	struct nh_handover_dev *hd;
	u32 state;
	u64 max_epoch;
	u64 max_op_id;
	u64 released_epoch;
	bool reclaimed;
	struct net_device *gated_dev;
	bool gate_lost;
	struct work_struct abandon_work;
	bool held;
	struct module *driver_module;
	struct device *pm_dev;
	const char *saved_override;
	struct nh_ring_state *rings;
	unsigned int n_rings;
	unsigned int reserved_vectors;
	u64 drained_tx_bytes;
	u64 quiesce_ns;
	unsigned int queue_count;
	u16 vendor;
	u16 device;
	char driver[32];
	u8 config[NH_CONFIG_LEN];
	unsigned int config_len;
	u64 reserved_epoch;
	u64 armed_epoch;
	u64 armed_op_id;
	u64 armed_handoff;
	u64 armed_active;
	atomic64_t doorbell_epoch;
	atomic64_t doorbells_ignored;
	struct work_struct commit_work;
};

/**
 * enum nh_fault - where a debugfs fault knob makes an operation fail
 * @NH_FAULT_NONE: no fault armed
 * @NH_FAULT_BEFORE: before the first change (gate / driver op / bind)
 * @NH_FAULT_AFTER: after the main step (drain done / op returned / bound):
 *	the module must undo it
 */
enum nh_fault {
	NH_FAULT_NONE,
	NH_FAULT_BEFORE,
	NH_FAULT_AFTER,
};

/* nh_main.c */
struct nh_dev *nh_dev_find(const char *id, bool create);
struct nh_dev *nh_dev_at(unsigned int index);
void nh_refresh_config(struct nh_dev *d);
void nh_stall(void);
void nh_stall_ms(const u32 *knob);
void nh_set_state(struct nh_dev *d, enum nh_state state);
void nh_hold(struct nh_dev *d, struct device *dev);
void nh_unhold(struct nh_dev *d);
bool nh_fault_hit(u32 *knob, enum nh_fault step);
extern u32 nh_fault_quiesce;
extern u32 nh_fault_attach;
extern u32 nh_quiesce_stall_ms;
extern u32 nh_attach_stall_ms;

/* nh_quiesce.c: cold mode */
struct net_device *nh_netdev_of(struct pci_dev *pdev, struct net *net);
u64 nh_bql_inflight(struct net_device *dev);
int nh_cold_quiesce(struct nh_dev *d, struct pci_dev *pdev, struct net *net,
		    unsigned int timeout_ms, struct netlink_ext_ack *extack);
int nh_cold_resume(struct nh_dev *d, struct pci_dev *pdev,
		   struct netlink_ext_ack *extack);
int nh_cold_release(struct nh_dev *d, struct pci_dev *pdev,
		    struct netlink_ext_ack *extack);
int nh_cold_attach(struct nh_dev *d, struct pci_dev *pdev,
		   struct netlink_ext_ack *extack);
void nh_gate_lost(struct nh_dev *d, struct net_device *dev);
void nh_abandon_work(struct work_struct *work);

/* nh_contract.c */
int nh_contract_quiesce(struct nh_dev *d, unsigned int timeout_ms,
			struct netlink_ext_ack *extack);
int nh_contract_resume(struct nh_dev *d, struct netlink_ext_ack *extack);
int nh_contract_release(struct nh_dev *d, struct netlink_ext_ack *extack);
int nh_contract_attach(struct nh_dev *d, const struct nh_ring_state *rings,
		       unsigned int n, struct netlink_ext_ack *extack);

/* nh_msi.c */

/**
 * struct nh_msi_entry - one vector's message
 * @index: MSI-X table entry or MSI vector number
 * @irq: Linux irq (0 for a window entry)
 * @address: message address
 * @data: message data
 * @masked: vector control mask bit (MSI-X) or mask bit (maskable MSI)
 * @cpu: effective CPU of the irq, or the requested target CPU
 */
struct nh_msi_entry {
	u32 index;
	u32 irq;
	u64 address;
	u32 data;
	bool masked;
	u32 cpu;
};

enum nh_msi_mode nh_msi_mode(struct pci_dev *pdev);
int nh_msi_count(struct pci_dev *pdev);
int nh_msi_read(struct pci_dev *pdev, struct nh_msi_entry *out, int max);
int nh_msi_reroute_affinity(struct pci_dev *pdev, const struct nh_msi_entry *req,
			    int n, struct netlink_ext_ack *extack);
int nh_msi_check_raw(const struct nh_msi_entry *req, int n,
		     struct netlink_ext_ack *extack);
int nh_msi_reroute_raw(struct pci_dev *pdev, const struct nh_msi_entry *req,
		       int n, struct netlink_ext_ack *extack);
int nh_window_read(const struct nh_handover_dev *hd, struct nh_msi_entry *out,
		   int max);
int nh_window_reroute(const struct nh_handover_dev *hd,
		      const struct nh_msi_entry *req, int n,
		      struct netlink_ext_ack *extack);
void nh_window_unmask(const struct nh_handover_dev *hd, unsigned int n);

/* nh_commit.c: the kernel commit path */
int nh_commit_arm(struct nh_dev *d, u64 epoch, u64 op_id, u64 handoff,
		  u64 active, struct netlink_ext_ack *extack);
void nh_commit_disarm(struct nh_dev *d);
int nh_commit_handoff(struct nh_dev *d, u64 epoch, u64 op_id, u64 expected,
		      u64 desired, u64 *found, u32 *stage,
		      struct netlink_ext_ack *extack);
void nh_commit_work(struct work_struct *work);
int nh_commit_init(void);
void nh_commit_exit(void);

/**
 * struct nh_event - one entry of the commit path's event log
 * @seq: from 1 per module load
 * @kind: enum nh_event_kind
 * @id: the device's machine-wide PCI name
 * @epoch: the handover's epoch
 * @record: the record as the kernel left or found it
 * @reason: why not committed ("" when committed)
 */
struct nh_event {
	u64 seq;
	u32 kind;
	char id[NH_PCI_DEV_LEN];
	u64 epoch;
	u64 record;
	char reason[64];
};

u64 nh_events_newest(void);
int nh_events_copy(u64 after, struct nh_event *out, unsigned int max);
long nh_events_wait(u64 after, unsigned int timeout_ms);

/* nh_genl.c */
int nh_genl_register(void);
void nh_genl_unregister(void);

#endif /* _NH_INTERNAL_H */
