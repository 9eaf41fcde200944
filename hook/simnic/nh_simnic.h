/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The private state of the simulated NIC's guest driver.
 *
 * The driver is split in two: nh_simnic_main.c (PCI probe, the directory,
 * the netdev and its data path) and nh_simnic_handover.c (the handover
 * contract of hook/kmod/nh_handover.h).  This header is what they share.
 */
#ifndef _NH_SIMNIC_H
#define _NH_SIMNIC_H

#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/u64_stats_sync.h>

#include "guest_abi.h"
#include "nh_handover.h"

#define NH_SIMNIC_DRV_NAME "nh_simnic"

/*
 * x86 vector this node "installs" for NIC MSI-X entry i: a fixed range, so
 * the messages a node hands out never depend on history.
 */
#define NH_SIMNIC_FIRST_VECTOR 0x40
/* MSI-X entries the driver can serve (ivshmem vectors 1..8). */
#define NH_SIMNIC_MAX_ENTRIES 8
#define NH_SIMNIC_MSI_ADDRESS_BASE 0xfee00000ULL

/**
 * enum nh_simnic_role - who runs the rings, as the ownership record decided
 * @NH_SIMNIC_STANDBY: another node owns the NIC; touch nothing of it
 * @NH_SIMNIC_RUNNING: this node owns and runs the NIC
 * @NH_SIMNIC_QUIESCED: this node owns the NIC, its engines stopped for a
 *	handover (resume or release follows)
 */
enum nh_simnic_role {
	NH_SIMNIC_STANDBY,
	NH_SIMNIC_RUNNING,
	NH_SIMNIC_QUIESCED,
};

/**
 * struct nh_simnic_nic - where the NIC's pieces are in BAR2
 * @regs: the register file (NH_SIM_REG_*)
 * @rx_ring: RX descriptors
 * @tx_ring: TX descriptors
 * @rx_buf: RX packet buffers, buffer i of descriptor i
 * @tx_buf: TX packet buffers
 * @msix: the MSI-X BAR (table at 0)
 * @config: the PCI config space image
 * @ownership: the ownership word (the daemon CASes it; the kernel too on
 *	its commit path, nh_simnic_commit.c)
 * @handoff: the handoff slot beside it (NH_SIM_HANDOFF_*)
 * @initialized: set once by the first owner
 * @running_node: node running the data path, or -1 (informational)
 * @ring_size: descriptors per ring (a power of two)
 * @buf_size: bytes per packet buffer
 * @msix_entries: MSI-X table entries
 * @queue_entry: MSI-X entry of queue 0
 * @other_entry: MSI-X entry of the "other" causes
 * @bdf: the machine-wide PCI name of the NIC
 */
struct nh_simnic_nic {
	void __iomem *regs;
	void __iomem *rx_ring;
	void __iomem *tx_ring;
	void __iomem *rx_buf;
	void __iomem *tx_buf;
	void __iomem *msix;
	void __iomem *config;
	void __iomem *ownership;
	void __iomem *handoff;
	void __iomem *initialized;
	void __iomem *running_node;
	u32 ring_size;
	u32 buf_size;
	u32 msix_entries;
	u32 queue_entry;
	u32 other_entry;
	char bdf[16];
};

/**
 * struct nh_simnic_stats - software counters
 * @syncp: u64 statistics sync
 * @packets: frames
 * @bytes: bytes
 * @dropped: frames dropped by the driver
 * @errors: malformed descriptors (RX) or oversized frames (TX)
 */
struct nh_simnic_stats {
	struct u64_stats_sync syncp;
	u64_stats_t packets;
	u64_stats_t bytes;
	u64_stats_t dropped;
	u64_stats_t errors;
};

/**
 * struct nh_simnic - one ivshmem function, one node's view of the NIC
 * @pdev: the ivshmem-doorbell function
 * @netdev: the interface
 * @napi: the data path (RX and TX completions)
 * @bar0: ivshmem registers (IVPosition, Doorbell)
 * @shm: BAR2, the machine's shared memory
 * @shm_len: its length
 * @slot: this node's slot in the directory
 * @node_index: this node's index
 * @nodes_offset: where the node slots start in BAR2
 * @node_stride: bytes between node slots
 * @node_count: node slots in use
 * @apic_id: this node's first machine APIC ID (the MSI-X destination)
 * @doorbell_device: Doorbell register value that kicks the NIC model
 * @nic: where the NIC is
 * @lock: serialises role changes: the handover ops, ndo_open/ndo_stop and
 *	remove (taken after rtnl_lock, never the other way round)
 * @role: enum nh_simnic_role, written under @lock, read locklessly
 * @up: the interface is open (under @lock)
 * @engines_on: NAPI enabled and causes armed (under @lock; read by IRQs)
 * @tx_open: ndo_start_xmit may wake the queue (read under the TX lock)
 * @reserved: MSI-X entries reserved for an incoming handover
 * @installed: MSI-X entries whose guest_vector[] this node filled
 * @eims_lock: the EIMS read-modify-write of IRQ handlers and NAPI
 * @rx_ntc: next RX descriptor to clean
 * @rx_ntu: last RX descriptor given to the device (RDT)
 * @tx_ntc: next TX descriptor whose completion is due
 * @tx_ntu: next TX descriptor to fill (TDT)
 * @tx_bql_len: bytes BQL counted for each TX descriptor (0: not ours)
 * @last_xmit: jiffies of the last ndo_start_xmit
 * @rx_missed: the device's missed-frame counter, read by NAPI
 * @rx_stats: RX counters (NAPI)
 * @tx_stats: TX completion counters (NAPI or the quiesce)
 * @xmit_stats: TX drops and errors (ndo_start_xmit: its own writer)
 * @handovers_in: attaches that made this node the owner
 * @handovers_out: releases that gave the NIC away
 * @quiesces: completed quiesces
 * @quiesce_timeouts: quiesces undone after their timeout
 * @tx_quiet_waits: quiesces whose TX quiet wait hit its bound
 * @hd: the registration with the handover hook
 * @hd_registered: @hd is registered
 */
struct nh_simnic {
	struct pci_dev *pdev;
	struct net_device *netdev;
	struct napi_struct napi;
	void __iomem *bar0;
	void __iomem *shm;
	resource_size_t shm_len;
	void __iomem *slot;
	u32 node_index;
	u64 nodes_offset;
	u32 node_stride;
	u32 node_count;
	u32 apic_id;
	u32 doorbell_device;
	struct nh_simnic_nic nic;

	struct mutex lock; /* see above */
	enum nh_simnic_role role;
	bool up;
	bool engines_on;
	bool tx_open;
	unsigned int reserved;
	unsigned int installed;
	spinlock_t eims_lock; /* see above */

	u32 rx_ntc;
	u32 rx_ntu;
	u32 tx_ntc;
	u32 tx_ntu;
	u32 *tx_bql_len;
	unsigned long last_xmit;

	u64 rx_missed;
	struct nh_simnic_stats rx_stats;
	struct nh_simnic_stats tx_stats;
	struct nh_simnic_stats xmit_stats;
	atomic64_t handovers_in;
	atomic64_t handovers_out;
	atomic64_t quiesces;
	atomic64_t quiesce_timeouts;
	atomic64_t tx_quiet_waits;

	struct nh_handover_dev hd;
	bool hd_registered;
};

/* nh_simnic_main.c */
void nh_simnic_kick(struct nh_simnic *sn);
u32 nh_simnic_reg_read(struct nh_simnic *sn, unsigned int reg);
void nh_simnic_reg_write(struct nh_simnic *sn, unsigned int reg, u32 val);
void nh_simnic_set_causes(struct nh_simnic *sn, bool armed);
void nh_simnic_install_vectors(struct nh_simnic *sn, unsigned int n);
void nh_simnic_uninstall_vectors(struct nh_simnic *sn);
struct nh_msi_msg nh_simnic_msg(struct nh_simnic *sn, unsigned int entry);
int nh_simnic_check_routing(struct nh_simnic *sn);
int nh_simnic_setup_nic(struct nh_simnic *sn);
void nh_simnic_adopt_rings(struct nh_simnic *sn);
void nh_simnic_start_engines(struct nh_simnic *sn);
void nh_simnic_stop_engines(struct nh_simnic *sn);
void nh_simnic_clean_tx(struct nh_simnic *sn);
void nh_simnic_set_running_node(struct nh_simnic *sn, bool running);

/* nh_simnic_handover.c */
extern const struct nh_handover_ops nh_simnic_handover_ops;
extern unsigned int nh_simnic_tx_quiet_ms;

/* nh_simnic_commit.c */
extern const struct nh_commit_ops nh_simnic_commit_ops;
void nh_simnic_doorbell(struct nh_simnic *sn);

#endif /* _NH_SIMNIC_H */
