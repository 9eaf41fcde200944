/* SPDX-License-Identifier: GPL-2.0 */
/*
 * nh_internal.h - shared state of the nichandover hook module.
 *
 * Locking: every field of struct nh_dev except the counters is changed
 * under rtnl_lock.  Control requests take rtnl for their whole duration
 * (the netdevice notifier runs under it too, so a device cannot go down
 * or disappear in the middle of a quiesce).  The tracepoint probes only
 * read @gated_dev and @napi_off with READ_ONCE() and bump atomic counters;
 * they never dereference @gated_dev.
 */
#ifndef _NH_INTERNAL_H
#define _NH_INTERNAL_H

#include <linux/atomic.h>
#include <linux/netdevice.h>
#include <linux/netlink.h>
#include <linux/pci.h>
#include <linux/types.h>

#include "nichandover_genl.h"

#define NH_MAX_DEVS 16
#define NH_MAX_NAPI 64
#define NH_MAX_VECTORS 64

/**
 * struct nh_dev - what the hook knows of one PCI function
 * @in_use: slot allocated
 * @domain: PCI domain of the function
 * @bus: PCI bus number
 * @devfn: PCI device/function
 * @max_epoch: highest epoch seen in an accepted request
 * @released: handed to another node (RELEASE); stays gated
 * @quiesced: the last QUIESCE completed every step
 * @gated: TX gate closed (queues frozen, device detached)
 * @gated_dev: the netdev gated; never holds a reference (cleared on
 *	NETDEV_UNREGISTER), compared by the probes, never dereferenced there
 * @napi_off: NAPI instances disabled by us
 * @napis: the NAPI instances we disabled
 * @irqs_masked: number of entries of @irqs we disabled
 * @irqs: the Linux irqs we disabled
 * @held_xmits: skbs handed to the stack for @gated_dev while gated
 * @xmits_while_quiesced: ndo_start_xmit calls for @gated_dev while gated
 * @polls_while_quiesced: NAPI polls of @gated_dev while NAPI is off
 * @drain_rx_work: packets NAPI processed between gate and napi_disable
 * @drained_tx_bytes: BQL in-flight bytes when the gate closed
 * @tx_packets_at_gate: the driver's tx_packets when the gate closed
 * @drained_tx_packets: tx_packets delta over the drain
 * @quiesce_ns: duration of the last quiesce
 */
struct nh_dev {
	bool in_use;
	u16 domain;
	u8 bus;
	u8 devfn;
	u64 max_epoch;
	bool released;
	bool quiesced;
	bool gated;
	struct net_device *gated_dev;
	bool napi_off;
	unsigned int n_napis;
	struct napi_struct *napis[NH_MAX_NAPI];
	unsigned int irqs_masked;
	unsigned int irqs[NH_MAX_VECTORS];
	atomic64_t held_xmits;
	atomic64_t xmits_while_quiesced;
	atomic64_t polls_while_quiesced;
	atomic64_t drain_rx_work;
	u64 drained_tx_bytes;
	u64 tx_packets_at_gate;
	u64 drained_tx_packets;
	u64 quiesce_ns;
};

extern struct nh_dev nh_devs[NH_MAX_DEVS];

/* nh_main.c */
struct nh_dev *nh_dev_get(struct pci_dev *pdev, bool create);
struct net_device *nh_netdev_of(struct pci_dev *pdev);
enum nh_state nh_dev_state(const struct nh_dev *d);
int nh_probes_register(void);
void nh_probes_unregister(void);

/* nh_quiesce.c */
int nh_quiesce(struct nh_dev *d, struct pci_dev *pdev, unsigned int timeout_ms,
	       struct netlink_ext_ack *extack);
void nh_resume(struct nh_dev *d);
u64 nh_bql_inflight(struct net_device *dev);

/* nh_msi.c */

/**
 * struct nh_msi_entry - one vector's message
 * @index: MSI-X table entry or MSI vector number
 * @irq: Linux irq
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
int nh_msi_read(struct pci_dev *pdev, struct nh_msi_entry *out, int max);
int nh_msi_reroute_affinity(struct pci_dev *pdev, const struct nh_msi_entry *req,
			    int n, struct netlink_ext_ack *extack);
int nh_msi_reroute_raw(struct pci_dev *pdev, const struct nh_msi_entry *req,
		       int n, struct netlink_ext_ack *extack);
int nh_msi_irqs(struct pci_dev *pdev, unsigned int *irqs, int max);

/* nh_genl.c */
int nh_genl_register(void);
void nh_genl_unregister(void);

#endif /* _NH_INTERNAL_H */
