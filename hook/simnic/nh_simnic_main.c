// SPDX-License-Identifier: GPL-2.0
/*
 * A network driver for the simulated NIC of nh-sim-machine,
 * as a QEMU guest reaches it through an ivshmem-doorbell PCI function.
 *
 * BAR0 holds the ivshmem registers (IVPosition, Doorbell), BAR2 is the
 * machine's whole shared memory: a directory (sim/guest_abi.h) says where the
 * NIC's registers, rings, packet buffers, MSI-X table and config space image
 * are, and which node slot is this guest's.  The NIC cannot DMA into guest
 * memory: this is a copy-mode driver.  RX copies each frame from its shared
 * buffer into an skb; TX copies the skb into the next shared TX buffer.
 *
 * Every node of the machine has this driver bound all the time, but only
 * the owner named by the ownership record runs the rings; the others are on
 * standby and never read or write the NIC's registers, rings or MSI-X table.
 * The handover between them is the contract of hook/kmod/nh_handover.h,
 * implemented in nh_simnic_handover.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitops.h>
#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/overflow.h>
#include <linux/pci.h>
#include <linux/skbuff.h>

#include "nh_simnic.h"

#define NH_SIMNIC_BAR_REGS 0
#define NH_SIMNIC_BAR_SHM 2
#define NH_SIMNIC_DESC_SIZE sizeof(struct nh_sim_desc)
#define NH_SIMNIC_DESC_STATUS 0
#define NH_SIMNIC_DESC_LENGTH 4
/* Bytes a node slot must span: up to the end of delivered[256]. */
#define NH_SIMNIC_SLOT_MIN_SIZE (NH_SIM_NODE_DELIVERED_OFFSET + 256 * 8)
#define NH_SIMNIC_CONFIG_SIZE 4096
#define NH_SIMNIC_REGS_SIZE (NH_SIM_REG_TX_PACKETS + 8)

static void __iomem *nh_simnic_rx_desc(struct nh_simnic *sn, u32 i)
{
	return sn->nic.rx_ring + i * NH_SIMNIC_DESC_SIZE;
}

static void __iomem *nh_simnic_tx_desc(struct nh_simnic *sn, u32 i)
{
	return sn->nic.tx_ring + i * NH_SIMNIC_DESC_SIZE;
}

static u32 nh_simnic_tx_free(struct nh_simnic *sn)
{
	return (READ_ONCE(sn->tx_ntc) - sn->tx_ntu - 1) & (sn->nic.ring_size - 1);
}

/**
 * nh_simnic_kick() - tell the NIC model that its registers changed
 * @sn: the driver
 *
 * The NIC is a host process: a write to its registers in shared memory is
 * not an MMIO exit, so the driver rings the machine's DEVICE doorbell after
 * writes the device must act on (tails, EIMS, the MSI-X table).
 */
void nh_simnic_kick(struct nh_simnic *sn)
{
	writel(sn->doorbell_device, sn->bar0 + NH_SIM_IVSHMEM_REG_DOORBELL);
}

u32 nh_simnic_reg_read(struct nh_simnic *sn, unsigned int reg)
{
	return readl(sn->nic.regs + reg);
}

void nh_simnic_reg_write(struct nh_simnic *sn, unsigned int reg, u32 val)
{
	writel(val, sn->nic.regs + reg);
}

static u32 nh_simnic_cause_bits(struct nh_simnic *sn)
{
	return BIT(sn->nic.queue_entry) | BIT(sn->nic.other_entry);
}

/*
 * EIMS is a plain word the device clears bit by bit when it fires an entry
 * (auto-mask).  A read-modify-write here can only re-set a bit the device
 * cleared meanwhile (one early interrupt), never lose one the driver sets.
 */
static void nh_simnic_eims_update(struct nh_simnic *sn, u32 set, u32 clear)
{
	u32 eims = nh_simnic_reg_read(sn, NH_SIM_REG_EIMS);

	nh_simnic_reg_write(sn, NH_SIM_REG_EIMS, (eims | set) & ~clear);
	nh_simnic_kick(sn);
}

/**
 * nh_simnic_set_causes() - arm or disarm the data-path causes
 * @sn: the driver, this node owning the NIC
 * @armed: arm them (engines on) or disarm them (engines off)
 *
 * Context: process context, @sn->lock held.
 */
void nh_simnic_set_causes(struct nh_simnic *sn, bool armed)
{
	u32 bits = nh_simnic_cause_bits(sn);

	spin_lock_irq(&sn->eims_lock);
	WRITE_ONCE(sn->engines_on, armed);
	nh_simnic_eims_update(sn, armed ? bits : 0, armed ? 0 : bits);
	spin_unlock_irq(&sn->eims_lock);
}

/**
 * nh_simnic_msg() - the MSI-X message that reaches this node for an entry
 * @sn: the driver
 * @entry: NIC MSI-X entry
 *
 * Return: a fixed-destination x86 message: this node's first machine APIC
 * ID, the vector installed for @entry.
 */
struct nh_msi_msg nh_simnic_msg(struct nh_simnic *sn, unsigned int entry)
{
	struct nh_msi_msg msg = {
		.address = NH_SIMNIC_MSI_ADDRESS_BASE | ((u64)sn->apic_id << 12),
		.data = NH_SIMNIC_FIRST_VECTOR + entry,
	};

	return msg;
}

/**
 * nh_simnic_install_vectors() - "request" the x86 vectors of entries 0..n-1
 * @sn: the driver
 * @n: entries
 *
 * Fills this node's guest_vector[] so the machine's interrupt fabric turns a
 * message for vector NH_SIMNIC_FIRST_VECTOR + i into ivshmem vector
 * NH_SIM_IVSHMEM_VEC_NIC0 + i of this function.  Only this node's slot is
 * written: it is the node's local APIC, not the NIC.
 */
void nh_simnic_install_vectors(struct nh_simnic *sn, unsigned int n)
{
	void __iomem *table = sn->slot + NH_SIM_NODE_GUEST_VECTOR_OFFSET;
	unsigned int i;

	for (i = 0; i < n; i++)
		writeb(NH_SIM_IVSHMEM_VEC_NIC0 + i + 1,
		       table + NH_SIMNIC_FIRST_VECTOR + i);
	sn->installed = max(sn->installed, n);
}

/**
 * nh_simnic_uninstall_vectors() - give every installed vector back
 * @sn: the driver
 */
void nh_simnic_uninstall_vectors(struct nh_simnic *sn)
{
	void __iomem *table = sn->slot + NH_SIM_NODE_GUEST_VECTOR_OFFSET;
	unsigned int i;

	for (i = 0; i < sn->installed; i++)
		writeb(0, table + NH_SIMNIC_FIRST_VECTOR + i);
	sn->installed = 0;
}

void nh_simnic_set_running_node(struct nh_simnic *sn, bool running)
{
	if (running)
		writel(sn->node_index, sn->nic.running_node);
	else if (readl(sn->nic.running_node) == sn->node_index)
		writel((u32)-1, sn->nic.running_node);
}

/* Offset of the MSI-X capability in the NIC's config space image, or 0. */
static unsigned int nh_simnic_msix_cap(struct nh_simnic *sn)
{
	unsigned int pos, ttl = 48;

	if (!(readw(sn->nic.config + PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	pos = readb(sn->nic.config + PCI_CAPABILITY_LIST);
	while (ttl-- && pos >= PCI_STD_HEADER_SIZEOF &&
	       pos <= NH_SIMNIC_CONFIG_SIZE - PCI_CAP_MSIX_SIZEOF) {
		pos &= ~3;
		if (readb(sn->nic.config + pos + PCI_CAP_LIST_ID) ==
		    PCI_CAP_ID_MSIX)
			return pos;
		pos = readb(sn->nic.config + pos + PCI_CAP_LIST_NEXT);
	}
	return 0;
}

static void nh_simnic_mask_entry(struct nh_simnic *sn, unsigned int i,
				 bool masked)
{
	void __iomem *ctrl = sn->nic.msix + i * PCI_MSIX_ENTRY_SIZE +
			     PCI_MSIX_ENTRY_VECTOR_CTRL;
	u32 val = readl(ctrl);

	if (masked)
		val |= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	else
		val &= ~PCI_MSIX_ENTRY_CTRL_MASKBIT;
	writel(val, ctrl);
}

/*
 * Program every MSI-X entry with this node's message and enable MSI-X in
 * the config image: what pci_alloc_irq_vectors() does for a PCI function,
 * done by the owner of a NIC reached through a window.
 */
static int nh_simnic_program_table(struct nh_simnic *sn)
{
	unsigned int cap = nh_simnic_msix_cap(sn);
	unsigned int i;
	u16 flags;

	if (!cap) {
		dev_err(&sn->pdev->dev,
			"the NIC's config space image has no MSI-X capability\n");
		return -ENODEV;
	}
	for (i = 0; i < sn->nic.msix_entries; i++) {
		void __iomem *e = sn->nic.msix + i * PCI_MSIX_ENTRY_SIZE;
		struct nh_msi_msg msg = nh_simnic_msg(sn, i);

		nh_simnic_mask_entry(sn, i, true);
		writel(lower_32_bits(msg.address), e + PCI_MSIX_ENTRY_LOWER_ADDR);
		writel(upper_32_bits(msg.address), e + PCI_MSIX_ENTRY_UPPER_ADDR);
		writel(msg.data, e + PCI_MSIX_ENTRY_DATA);
	}
	flags = readw(sn->nic.config + cap + PCI_MSIX_FLAGS);
	flags = (flags | PCI_MSIX_FLAGS_ENABLE) & ~PCI_MSIX_FLAGS_MASKALL;
	writew(flags, sn->nic.config + cap + PCI_MSIX_FLAGS);
	for (i = 0; i < sn->nic.msix_entries; i++)
		nh_simnic_mask_entry(sn, i, false);
	nh_simnic_kick(sn);
	return 0;
}

/**
 * nh_simnic_check_routing() - does every MSI-X entry name this node?
 * @sn: the driver
 *
 * Return: 0, or -EINVAL (logged) for the first entry whose message is not
 * the one this node installed for it.
 */
int nh_simnic_check_routing(struct nh_simnic *sn)
{
	unsigned int i;

	for (i = 0; i < sn->nic.msix_entries; i++) {
		void __iomem *e = sn->nic.msix + i * PCI_MSIX_ENTRY_SIZE;
		struct nh_msi_msg want = nh_simnic_msg(sn, i);
		u64 addr = readl(e + PCI_MSIX_ENTRY_LOWER_ADDR) |
			   (u64)readl(e + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
		u32 data = readl(e + PCI_MSIX_ENTRY_DATA);

		if (addr != want.address || data != want.data) {
			dev_err(&sn->pdev->dev,
				"MSI-X entry %u holds 0x%llx/0x%x, this node's message is 0x%llx/0x%x\n",
				i, addr, data, want.address, want.data);
			return -EINVAL;
		}
	}
	return 0;
}

static void nh_simnic_reset_tx_accounting(struct nh_simnic *sn)
{
	memset(sn->tx_bql_len, 0, sn->nic.ring_size * sizeof(*sn->tx_bql_len));
	netdev_tx_reset_queue(netdev_get_tx_queue(sn->netdev, 0));
}

/**
 * nh_simnic_setup_nic() - the first owner sets a never-initialised NIC up
 * @sn: the driver
 *
 * Rings empty and given to the device, RX and TX enabled, the MSI-X table
 * routed to this node; the causes stay disarmed until the engines start.
 *
 * Return: 0 or a negative errno.
 */
int nh_simnic_setup_nic(struct nh_simnic *sn)
{
	u32 size = sn->nic.ring_size;
	u32 i;
	int err;

	for (i = 0; i < size; i++) {
		writel(0, nh_simnic_rx_desc(sn, i) + NH_SIMNIC_DESC_STATUS);
		writel(0, nh_simnic_tx_desc(sn, i) + NH_SIMNIC_DESC_STATUS);
	}
	nh_simnic_reg_write(sn, NH_SIM_REG_EIMS, 0);
	nh_simnic_reg_write(sn, NH_SIM_REG_RDH, 0);
	nh_simnic_reg_write(sn, NH_SIM_REG_TDH, 0);
	nh_simnic_reg_write(sn, NH_SIM_REG_TDT, 0);
	nh_simnic_reg_write(sn, NH_SIM_REG_RDT, size - 1);
	sn->rx_ntc = 0;
	sn->rx_ntu = size - 1;
	sn->tx_ntc = 0;
	sn->tx_ntu = 0;
	nh_simnic_reset_tx_accounting(sn);
	nh_simnic_install_vectors(sn, sn->nic.msix_entries);
	err = nh_simnic_program_table(sn);
	if (err)
		return err;
	nh_simnic_reg_write(sn, NH_SIM_REG_CTRL,
			    NH_SIM_CTRL_RX_ENABLE | NH_SIM_CTRL_TX_ENABLE);
	writel(1, sn->nic.initialized);
	nh_simnic_kick(sn);
	dev_info(&sn->pdev->dev, "set up %s: %u descriptors per ring, first owner\n",
		 sn->nic.bdf, size);
	return 0;
}

/**
 * nh_simnic_adopt_rings() - continue a running NIC from its registers
 * @sn: the driver
 *
 * For an owner without a ring state (this node booted while owning the
 * NIC): every descriptor the device completed is after RDT, every TX
 * descriptor before TDH was sent.
 */
void nh_simnic_adopt_rings(struct nh_simnic *sn)
{
	u32 mask = sn->nic.ring_size - 1;

	sn->rx_ntu = nh_simnic_reg_read(sn, NH_SIM_REG_RDT) & mask;
	sn->rx_ntc = (sn->rx_ntu + 1) & mask;
	sn->tx_ntu = nh_simnic_reg_read(sn, NH_SIM_REG_TDT) & mask;
	sn->tx_ntc = nh_simnic_reg_read(sn, NH_SIM_REG_TDH) & mask;
	nh_simnic_reset_tx_accounting(sn);
}

/**
 * nh_simnic_start_engines() - NAPI on, causes armed, queues awake
 * @sn: the driver; the NIC is this node's and the interface is up
 *
 * One poll is scheduled: the ring may hold frames that arrived while nobody
 * ran it (a handover's blackout), and the device does not interrupt for
 * causes it raised while they were disarmed until it is told.
 *
 * Context: process context, @sn->lock held.
 */
void nh_simnic_start_engines(struct nh_simnic *sn)
{
	napi_enable(&sn->napi);
	nh_simnic_set_causes(sn, true);
	netif_tx_lock_bh(sn->netdev);
	WRITE_ONCE(sn->tx_open, true);
	netif_tx_unlock_bh(sn->netdev);
	netif_tx_wake_all_queues(sn->netdev);
	local_bh_disable();
	napi_schedule(&sn->napi);
	local_bh_enable();
}

/**
 * nh_simnic_stop_engines() - queues stopped, NAPI off, causes disarmed
 * @sn: the driver, engines on
 *
 * Context: process context, @sn->lock held.
 */
void nh_simnic_stop_engines(struct nh_simnic *sn)
{
	WRITE_ONCE(sn->tx_open, false);
	netif_tx_disable(sn->netdev);
	napi_disable(&sn->napi);
	nh_simnic_set_causes(sn, false);
}

/**
 * nh_simnic_clean_tx() - reap TX completions, wake the queue if it may run
 * @sn: the driver
 *
 * Context: NAPI, or process context with NAPI disabled (the quiesce).
 */
void nh_simnic_clean_tx(struct nh_simnic *sn)
{
	struct netdev_queue *txq = netdev_get_tx_queue(sn->netdev, 0);
	u32 mask = sn->nic.ring_size - 1;
	/* Pairs with the release in xmit: tx_bql_len[] before tx_ntu. */
	u32 ntu = smp_load_acquire(&sn->tx_ntu);
	u32 ntc = sn->tx_ntc;
	unsigned int pkts = 0, bytes = 0;

	while (ntc != ntu) {
		void __iomem *desc = nh_simnic_tx_desc(sn, ntc);

		if (!(readl(desc + NH_SIMNIC_DESC_STATUS) & NH_SIM_DESC_DONE))
			break;
		if (sn->tx_bql_len[ntc]) {
			pkts++;
			bytes += sn->tx_bql_len[ntc];
			sn->tx_bql_len[ntc] = 0;
		}
		writel(0, desc + NH_SIMNIC_DESC_STATUS);
		ntc = (ntc + 1) & mask;
	}
	if (ntc != sn->tx_ntc) {
		/* The cleared descriptors before xmit may reuse them. */
		smp_store_release(&sn->tx_ntc, ntc);
		netdev_tx_completed_queue(txq, pkts, bytes);
		u64_stats_update_begin(&sn->tx_stats.syncp);
		u64_stats_add(&sn->tx_stats.packets, pkts);
		u64_stats_add(&sn->tx_stats.bytes, bytes);
		u64_stats_update_end(&sn->tx_stats.syncp);
	}
	/* Pairs with the barrier after netif_tx_stop_queue() in xmit. */
	smp_mb();
	if (unlikely(netif_tx_queue_stopped(txq)) &&
	    nh_simnic_tx_free(sn) >= sn->nic.ring_size / 4) {
		/*
		 * Under the queue's lock: the quiesce clears tx_open before it
		 * takes this lock to stop the queue, so no wake undoes it.
		 */
		__netif_tx_lock_bh(txq);
		if (READ_ONCE(sn->tx_open) && netif_tx_queue_stopped(txq))
			netif_tx_wake_queue(txq);
		__netif_tx_unlock_bh(txq);
	}
}

static int nh_simnic_clean_rx(struct nh_simnic *sn, int budget)
{
	u32 mask = sn->nic.ring_size - 1;
	u32 ntc = sn->rx_ntc;
	u64 pkts = 0, bytes = 0, dropped = 0, errors = 0;
	int work = 0;

	while (work < budget) {
		void __iomem *desc = nh_simnic_rx_desc(sn, ntc);
		struct sk_buff *skb;
		u32 len;

		if (!(readl(desc + NH_SIMNIC_DESC_STATUS) & NH_SIM_DESC_DONE))
			break;
		/* The device wrote the buffer and length before DD. */
		rmb();
		len = readl(desc + NH_SIMNIC_DESC_LENGTH);
		if (len < ETH_HLEN || len > sn->nic.buf_size) {
			errors++;
		} else {
			skb = napi_alloc_skb(&sn->napi, len);
			if (!skb) {
				dropped++;
			} else {
				memcpy_fromio(skb_put(skb, len),
					      sn->nic.rx_buf + (size_t)ntc * sn->nic.buf_size,
					      len);
				skb->protocol = eth_type_trans(skb, sn->netdev);
				pkts++;
				bytes += len;
				napi_gro_receive(&sn->napi, skb);
			}
		}
		writel(0, desc + NH_SIMNIC_DESC_STATUS);
		ntc = (ntc + 1) & mask;
		work++;
	}
	if (!work)
		return 0;
	sn->rx_ntc = ntc;
	/* Every cleaned descriptor goes back to the device at once. */
	sn->rx_ntu = (ntc - 1) & mask;
	/* Cleared descriptors before the tail that gives them back. */
	wmb();
	nh_simnic_reg_write(sn, NH_SIM_REG_RDT, sn->rx_ntu);
	u64_stats_update_begin(&sn->rx_stats.syncp);
	u64_stats_add(&sn->rx_stats.packets, pkts);
	u64_stats_add(&sn->rx_stats.bytes, bytes);
	u64_stats_add(&sn->rx_stats.dropped, dropped);
	u64_stats_add(&sn->rx_stats.errors, errors);
	u64_stats_update_end(&sn->rx_stats.syncp);
	return work;
}

static int nh_simnic_poll(struct napi_struct *napi, int budget)
{
	struct nh_simnic *sn = container_of(napi, struct nh_simnic, napi);
	int work = 0;

	nh_simnic_clean_tx(sn);
	if (budget)
		work = nh_simnic_clean_rx(sn, budget);
	WRITE_ONCE(sn->rx_missed,
		   readq(sn->nic.regs + NH_SIM_REG_RX_MISSED));
	if (work < budget && napi_complete_done(napi, work)) {
		unsigned long flags;

		/* Causes latch in EICR: one raised meanwhile fires now. */
		spin_lock_irqsave(&sn->eims_lock, flags);
		nh_simnic_eims_update(sn, BIT(sn->nic.queue_entry), 0);
		spin_unlock_irqrestore(&sn->eims_lock, flags);
	}
	return work;
}

static netdev_tx_t nh_simnic_xmit(struct sk_buff *skb,
				  struct net_device *netdev)
{
	struct nh_simnic *sn = netdev_priv(netdev);
	struct netdev_queue *txq = netdev_get_tx_queue(netdev, 0);
	u32 mask = sn->nic.ring_size - 1;
	u32 ntu = sn->tx_ntu;
	u32 len = skb->len;
	void __iomem *desc;

	if (unlikely(len < ETH_HLEN || len > sn->nic.buf_size)) {
		u64_stats_update_begin(&sn->xmit_stats.syncp);
		u64_stats_inc(&sn->xmit_stats.errors);
		u64_stats_inc(&sn->xmit_stats.dropped);
		u64_stats_update_end(&sn->xmit_stats.syncp);
		dev_kfree_skb_any(skb);
		return NETDEV_TX_OK;
	}
	if (unlikely(!nh_simnic_tx_free(sn))) {
		/* The queue is stopped before the ring fills: a bug. */
		netif_tx_stop_queue(txq);
		return NETDEV_TX_BUSY;
	}
	/* No NETIF_F_SG: the stack hands over linear skbs. */
	desc = nh_simnic_tx_desc(sn, ntu);
	memcpy_toio(sn->nic.tx_buf + (size_t)ntu * sn->nic.buf_size, skb->data,
		    len);
	writel(len, desc + NH_SIMNIC_DESC_LENGTH);
	writel(0, desc + NH_SIMNIC_DESC_STATUS);
	sn->tx_bql_len[ntu] = len;
	skb_tx_timestamp(skb);
	WRITE_ONCE(sn->last_xmit, jiffies);
	/* Pairs with the acquire in clean_tx. */
	smp_store_release(&sn->tx_ntu, (ntu + 1) & mask);
	dev_consume_skb_any(skb);

	if (unlikely(!nh_simnic_tx_free(sn))) {
		netif_tx_stop_queue(txq);
		/* Pairs with the barrier in nh_simnic_clean_tx(). */
		smp_mb();
		if (nh_simnic_tx_free(sn) && READ_ONCE(sn->tx_open))
			netif_tx_start_queue(txq);
	}
	if (__netdev_tx_sent_queue(txq, len, netdev_xmit_more())) {
		/* Buffer and descriptor before the tail. */
		wmb();
		nh_simnic_reg_write(sn, NH_SIM_REG_TDT, sn->tx_ntu);
		nh_simnic_kick(sn);
	}
	return NETDEV_TX_OK;
}

static int nh_simnic_open(struct net_device *netdev)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	mutex_lock(&sn->lock);
	sn->up = true;
	if (sn->role == NH_SIMNIC_RUNNING)
		nh_simnic_start_engines(sn);
	else
		netif_tx_stop_all_queues(netdev);
	mutex_unlock(&sn->lock);
	return 0;
}

static int nh_simnic_stop(struct net_device *netdev)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	mutex_lock(&sn->lock);
	/* Quiesced or on standby the engines are off already: keep them so. */
	if (sn->engines_on)
		nh_simnic_stop_engines(sn);
	sn->up = false;
	mutex_unlock(&sn->lock);
	return 0;
}

static void nh_simnic_read_stats(struct nh_simnic_stats *s, u64 *packets,
				 u64 *bytes, u64 *dropped, u64 *errors)
{
	unsigned int start;

	do {
		start = u64_stats_fetch_begin(&s->syncp);
		*packets = u64_stats_read(&s->packets);
		*bytes = u64_stats_read(&s->bytes);
		*dropped = u64_stats_read(&s->dropped);
		*errors = u64_stats_read(&s->errors);
	} while (u64_stats_fetch_retry(&s->syncp, start));
}

/* TX counters: completions from one writer, drops from another. */
static void nh_simnic_read_tx_stats(struct nh_simnic *sn, u64 *packets,
				    u64 *bytes, u64 *dropped, u64 *errors)
{
	u64 unused_packets, unused_bytes, unused_dropped, unused_errors;

	nh_simnic_read_stats(&sn->tx_stats, packets, bytes, &unused_dropped,
			     &unused_errors);
	nh_simnic_read_stats(&sn->xmit_stats, &unused_packets, &unused_bytes,
			     dropped, errors);
}

static void nh_simnic_get_stats64(struct net_device *netdev,
				  struct rtnl_link_stats64 *stats)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	nh_simnic_read_stats(&sn->rx_stats, &stats->rx_packets,
			     &stats->rx_bytes, &stats->rx_dropped,
			     &stats->rx_length_errors);
	stats->rx_errors = stats->rx_length_errors;
	nh_simnic_read_tx_stats(sn, &stats->tx_packets, &stats->tx_bytes,
				&stats->tx_dropped, &stats->tx_errors);
	/* The device's counter: frames no node had a descriptor for. */
	stats->rx_missed_errors = READ_ONCE(sn->rx_missed);
}

static const struct net_device_ops nh_simnic_netdev_ops = {
	.ndo_open = nh_simnic_open,
	.ndo_stop = nh_simnic_stop,
	.ndo_start_xmit = nh_simnic_xmit,
	.ndo_get_stats64 = nh_simnic_get_stats64,
	.ndo_validate_addr = eth_validate_addr,
};

static const char nh_simnic_stat_names[][ETH_GSTRING_LEN] = {
	"rx_packets", "rx_bytes", "rx_dropped", "rx_length_errors",
	"tx_packets", "tx_bytes", "tx_dropped", "tx_errors",
	"rx_missed_device", "handovers_in", "handovers_out", "quiesces",
	"quiesce_timeouts", "tx_quiet_waits_bounded", "running",
};

#define NH_SIMNIC_N_STATS ARRAY_SIZE(nh_simnic_stat_names)

static void nh_simnic_get_drvinfo(struct net_device *netdev,
				  struct ethtool_drvinfo *info)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	strscpy(info->driver, NH_SIMNIC_DRV_NAME, sizeof(info->driver));
	strscpy(info->bus_info, pci_name(sn->pdev), sizeof(info->bus_info));
	snprintf(info->fw_version, sizeof(info->fw_version),
		 "guest ABI %u, NIC %s", NH_SIM_GUEST_ABI_VERSION, sn->nic.bdf);
}

static int nh_simnic_get_sset_count(struct net_device *netdev, int sset)
{
	return sset == ETH_SS_STATS ? NH_SIMNIC_N_STATS : -EOPNOTSUPP;
}

static void nh_simnic_get_strings(struct net_device *netdev, u32 sset,
				  u8 *data)
{
	if (sset == ETH_SS_STATS)
		memcpy(data, nh_simnic_stat_names, sizeof(nh_simnic_stat_names));
}

static void nh_simnic_get_ethtool_stats(struct net_device *netdev,
					struct ethtool_stats *estats, u64 *data)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	nh_simnic_read_stats(&sn->rx_stats, &data[0], &data[1], &data[2],
			     &data[3]);
	nh_simnic_read_tx_stats(sn, &data[4], &data[5], &data[6], &data[7]);
	data[8] = READ_ONCE(sn->rx_missed);
	data[9] = atomic64_read(&sn->handovers_in);
	data[10] = atomic64_read(&sn->handovers_out);
	data[11] = atomic64_read(&sn->quiesces);
	data[12] = atomic64_read(&sn->quiesce_timeouts);
	data[13] = atomic64_read(&sn->tx_quiet_waits);
	data[14] = READ_ONCE(sn->role) == NH_SIMNIC_RUNNING;
}

static void nh_simnic_get_ringparam(struct net_device *netdev,
				    struct ethtool_ringparam *ring,
				    struct kernel_ethtool_ringparam *kring,
				    struct netlink_ext_ack *extack)
{
	struct nh_simnic *sn = netdev_priv(netdev);

	ring->rx_max_pending = sn->nic.ring_size;
	ring->tx_max_pending = sn->nic.ring_size;
	ring->rx_pending = sn->nic.ring_size;
	ring->tx_pending = sn->nic.ring_size;
}

static const struct ethtool_ops nh_simnic_ethtool_ops = {
	.get_drvinfo = nh_simnic_get_drvinfo,
	.get_link = ethtool_op_get_link,
	.get_ringparam = nh_simnic_get_ringparam,
	.get_sset_count = nh_simnic_get_sset_count,
	.get_strings = nh_simnic_get_strings,
	.get_ethtool_stats = nh_simnic_get_ethtool_stats,
};

/* --- Interrupts ---------------------------------------------------------- */

static irqreturn_t nh_simnic_control_irq(int irq, void *data)
{
	/* The vector reserved for another kernel's commit doorbell. */
	nh_simnic_doorbell(data);
	return IRQ_HANDLED;
}

static irqreturn_t nh_simnic_queue_irq(int irq, void *data)
{
	struct nh_simnic *sn = data;

	/*
	 * Interrupts coalesce: an IRQ means "look at the rings".  While NAPI
	 * is disabled (standby, quiesced, down) this is a no-op.
	 */
	napi_schedule_irqoff(&sn->napi);
	return IRQ_HANDLED;
}

static irqreturn_t nh_simnic_other_irq(int irq, void *data)
{
	struct nh_simnic *sn = data;

	/* Link causes: the simulated link never changes; re-arm only. */
	spin_lock(&sn->eims_lock);
	if (sn->engines_on)
		nh_simnic_eims_update(sn, BIT(sn->nic.other_entry), 0);
	spin_unlock(&sn->eims_lock);
	return IRQ_HANDLED;
}

static irqreturn_t nh_simnic_unused_irq(int irq, void *data)
{
	return IRQ_HANDLED;
}

static int nh_simnic_request_irqs(struct nh_simnic *sn)
{
	struct device *dev = &sn->pdev->dev;
	unsigned int v;

	for (v = 0; v < NH_SIM_IVSHMEM_VEC_NIC0 + sn->nic.msix_entries; v++) {
		irq_handler_t handler = nh_simnic_unused_irq;
		const char *name;
		int err;

		if (v == NH_SIM_IVSHMEM_VEC_CONTROL) {
			handler = nh_simnic_control_irq;
			name = devm_kasprintf(dev, GFP_KERNEL, "%s-control",
					      NH_SIMNIC_DRV_NAME);
		} else {
			unsigned int entry = v - NH_SIM_IVSHMEM_VEC_NIC0;

			if (entry == sn->nic.queue_entry)
				handler = nh_simnic_queue_irq;
			else if (entry == sn->nic.other_entry)
				handler = nh_simnic_other_irq;
			name = devm_kasprintf(dev, GFP_KERNEL, "%s-entry%u",
					      NH_SIMNIC_DRV_NAME, entry);
		}
		if (!name)
			return -ENOMEM;
		err = devm_request_irq(dev, pci_irq_vector(sn->pdev, v),
				       handler, 0, name, sn);
		if (err) {
			dev_err(dev, "request_irq of ivshmem vector %u: %d\n",
				v, err);
			return err;
		}
	}
	return 0;
}

/* --- Probe --------------------------------------------------------------- */

static int nh_simnic_check_range(struct nh_simnic *sn, const char *what,
				 u64 offset, u64 count, u64 size, u64 align)
{
	u64 len;

	if (check_mul_overflow(count, size, &len) || offset > sn->shm_len ||
	    len > sn->shm_len - offset || !IS_ALIGNED(offset, align)) {
		dev_err(&sn->pdev->dev,
			"directory: %s at 0x%llx (%llu x %llu bytes) is misaligned or outside the 0x%llx-byte shared memory\n",
			what, offset, count, size, (u64)sn->shm_len);
		return -EINVAL;
	}
	return 0;
}

static int nh_simnic_check_directory(struct nh_simnic *sn,
				     const struct nh_sim_directory *dir)
{
	struct device *dev = &sn->pdev->dev;
	u32 entries = dir->nic_msix_entries;
	int err = 0;

	if (dir->abi_version != NH_SIM_GUEST_ABI_VERSION) {
		dev_err(dev, "guest ABI version %u, this driver speaks %u\n",
			dir->abi_version, NH_SIM_GUEST_ABI_VERSION);
		return -EPROTO;
	}
	if (!dir->nic_count) {
		dev_err(dev, "the machine has no NIC\n");
		return -ENODEV;
	}
	if (!dir->node_count || dir->node_count > dir->max_nodes ||
	    dir->max_nodes > 256 || dir->node_stride < NH_SIMNIC_SLOT_MIN_SIZE) {
		dev_err(dev, "directory: bad node table (%u of %u slots, stride %u)\n",
			dir->node_count, dir->max_nodes, dir->node_stride);
		return -EINVAL;
	}
	if (!is_power_of_2(dir->nic_ring_size) || dir->nic_ring_size < 2 ||
	    dir->nic_ring_size > 65536 ||
	    dir->nic_buf_size < ETH_HLEN + ETH_MIN_MTU ||
	    dir->nic_buf_size > SZ_64K) {
		dev_err(dev, "directory: bad rings (%u descriptors of %u bytes)\n",
			dir->nic_ring_size, dir->nic_buf_size);
		return -EINVAL;
	}
	if (!entries || entries > NH_SIMNIC_MAX_ENTRIES ||
	    dir->nic_queue_entry >= entries || dir->nic_other_entry >= entries ||
	    dir->nic_queue_entry == dir->nic_other_entry) {
		dev_err(dev, "directory: bad MSI-X layout (%u entries, queue %u, other %u; at most %u)\n",
			entries, dir->nic_queue_entry, dir->nic_other_entry,
			NH_SIMNIC_MAX_ENTRIES);
		return -EINVAL;
	}
	if (!is_valid_ether_addr(dir->nic_mac)) {
		dev_err(dev, "directory: NIC MAC %pM is not a unicast address\n",
			dir->nic_mac);
		return -EINVAL;
	}
	err = err ?: nh_simnic_check_range(sn, "node slots", dir->nodes_offset,
					    dir->max_nodes, dir->node_stride, 8);
	err = err ?: nh_simnic_check_range(sn, "NIC BDF", dir->nic_bdf_offset,
					    1, 16, 1);
	err = err ?: nh_simnic_check_range(sn, "config image",
					    dir->nic_config_offset, 1,
					    NH_SIMNIC_CONFIG_SIZE, 4);
	err = err ?: nh_simnic_check_range(sn, "MSI-X table", dir->nic_msix_offset,
					    entries, PCI_MSIX_ENTRY_SIZE, 4);
	err = err ?: nh_simnic_check_range(sn, "MSI-X PBA",
					    dir->nic_msix_offset + dir->nic_msix_pba_offset,
					    1, 8, 4);
	err = err ?: nh_simnic_check_range(sn, "registers", dir->nic_regs_offset,
					    1, NH_SIMNIC_REGS_SIZE, 8);
	err = err ?: nh_simnic_check_range(sn, "RX ring", dir->nic_rx_ring_offset,
					    dir->nic_ring_size,
					    NH_SIMNIC_DESC_SIZE, 4);
	err = err ?: nh_simnic_check_range(sn, "TX ring", dir->nic_tx_ring_offset,
					    dir->nic_ring_size,
					    NH_SIMNIC_DESC_SIZE, 4);
	err = err ?: nh_simnic_check_range(sn, "RX buffers", dir->nic_rx_buf_offset,
					    dir->nic_ring_size, dir->nic_buf_size, 1);
	err = err ?: nh_simnic_check_range(sn, "TX buffers", dir->nic_tx_buf_offset,
					    dir->nic_ring_size, dir->nic_buf_size, 1);
	err = err ?: nh_simnic_check_range(sn, "ownership word",
					    dir->nic_ownership_offset, 1, 8, 8);
	err = err ?: nh_simnic_check_range(sn, "handoff slot",
					    dir->nic_handoff_offset, 1,
					    NH_SIM_HANDOFF_OP_ID + 8, 8);
	err = err ?: nh_simnic_check_range(sn, "initialized word",
					    dir->nic_initialized_offset, 1, 4, 4);
	err = err ?: nh_simnic_check_range(sn, "running node word",
					    dir->nic_running_node_offset, 1, 4, 4);
	return err;
}

/* Finds this guest's node slot: the one whose peer id is our IVPosition. */
static int nh_simnic_find_slot(struct nh_simnic *sn,
			       const struct nh_sim_directory *dir)
{
	struct device *dev = &sn->pdev->dev;
	u32 me = readl(sn->bar0 + NH_SIM_IVSHMEM_REG_IVPOSITION);
	u32 i, apics;

	for (i = 0; i < dir->node_count; i++) {
		void __iomem *slot = sn->shm + dir->nodes_offset +
				     (u64)i * dir->node_stride;

		if (readl(slot + NH_SIM_NODE_KIND_OFFSET) != NH_SIM_NODE_GUEST ||
		    readl(slot + NH_SIM_NODE_PEER_ID_OFFSET) != me)
			continue;
		apics = readl(slot + NH_SIM_NODE_APIC_COUNT_OFFSET);
		sn->apic_id = readl(slot + NH_SIM_NODE_APIC_IDS_OFFSET);
		if (!apics || apics > NH_SIM_NODE_MAX_APIC_IDS ||
		    sn->apic_id > 0xff) {
			dev_err(dev, "node slot %u: bad APIC IDs (%u, first %u)\n",
				i, apics, sn->apic_id);
			return -EINVAL;
		}
		sn->slot = slot;
		sn->node_index = i;
		sn->nodes_offset = dir->nodes_offset;
		sn->node_stride = dir->node_stride;
		sn->node_count = dir->node_count;
		return 0;
	}
	dev_err(dev, "no guest node slot has ivshmem peer id %u (%u slots): is this guest a node of the machine?\n",
		me, dir->node_count);
	return -ENODEV;
}

static int nh_simnic_map_nic(struct nh_simnic *sn,
			     const struct nh_sim_directory *dir)
{
	struct nh_simnic_nic *nic = &sn->nic;

	nic->regs = sn->shm + dir->nic_regs_offset;
	nic->rx_ring = sn->shm + dir->nic_rx_ring_offset;
	nic->tx_ring = sn->shm + dir->nic_tx_ring_offset;
	nic->rx_buf = sn->shm + dir->nic_rx_buf_offset;
	nic->tx_buf = sn->shm + dir->nic_tx_buf_offset;
	nic->msix = sn->shm + dir->nic_msix_offset;
	nic->config = sn->shm + dir->nic_config_offset;
	nic->ownership = sn->shm + dir->nic_ownership_offset;
	nic->handoff = sn->shm + dir->nic_handoff_offset;
	nic->initialized = sn->shm + dir->nic_initialized_offset;
	nic->running_node = sn->shm + dir->nic_running_node_offset;
	nic->ring_size = dir->nic_ring_size;
	nic->buf_size = dir->nic_buf_size;
	nic->msix_entries = dir->nic_msix_entries;
	nic->queue_entry = dir->nic_queue_entry;
	nic->other_entry = dir->nic_other_entry;
	memcpy_fromio(nic->bdf, sn->shm + dir->nic_bdf_offset, sizeof(nic->bdf));
	if (!memchr(nic->bdf, 0, sizeof(nic->bdf)) || !nic->bdf[0]) {
		dev_err(&sn->pdev->dev, "directory: the NIC's BDF is not a string\n");
		return -EINVAL;
	}
	sn->tx_bql_len = devm_kcalloc(&sn->pdev->dev, nic->ring_size,
				      sizeof(*sn->tx_bql_len), GFP_KERNEL);
	return sn->tx_bql_len ? 0 : -ENOMEM;
}

/*
 * The ownership record decides, never the driver alone: run if it is
 * ACTIVE with this node as the owner, else stay on standby.
 */
static int nh_simnic_decide_role(struct nh_simnic *sn)
{
	u64 own = readq(sn->nic.ownership);
	int err;

	if (NH_SIM_OWN_STATE(own) != NH_SIM_OWN_ACTIVE ||
	    NH_SIM_OWN_OWNER(own) != sn->node_index) {
		sn->role = NH_SIMNIC_STANDBY;
		dev_info(&sn->pdev->dev,
			 "node %u on standby for %s (record state %u, owner %u, epoch %llu)\n",
			 sn->node_index, sn->nic.bdf, NH_SIM_OWN_STATE(own),
			 NH_SIM_OWN_OWNER(own), (u64)NH_SIM_OWN_EPOCH(own));
		return 0;
	}
	if (!readl(sn->nic.initialized)) {
		err = nh_simnic_setup_nic(sn);
		if (err)
			return err;
	} else {
		/* This node owned the NIC before it (re)booted. */
		nh_simnic_install_vectors(sn, sn->nic.msix_entries);
		err = nh_simnic_program_table(sn);
		if (err)
			return err;
		nh_simnic_adopt_rings(sn);
		dev_info(&sn->pdev->dev, "node %u adopted running %s\n",
			 sn->node_index, sn->nic.bdf);
	}
	sn->role = NH_SIMNIC_RUNNING;
	nh_simnic_set_running_node(sn, true);
	return 0;
}

static int nh_simnic_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct nh_sim_directory dir;
	struct net_device *netdev;
	struct nh_simnic *sn;
	int vectors, err;

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	err = pcim_iomap_regions(pdev, BIT(NH_SIMNIC_BAR_REGS), NH_SIMNIC_DRV_NAME);
	if (err)
		return err;
	/*
	 * BAR2 is the machine's memory, which this node's user space shares by
	 * design: nichandoverd CASes the NIC's ownership record there through
	 * sysfs resource2.  Requesting the region would make it exclusive
	 * (IO_STRICT_DEVMEM) and refuse that mapping, so it is mapped without.
	 */
	if (!pcim_iomap(pdev, NH_SIMNIC_BAR_SHM, 0))
		return -ENOMEM;
	netdev = devm_alloc_etherdev(dev, sizeof(*sn));
	if (!netdev)
		return -ENOMEM;
	SET_NETDEV_DEV(netdev, dev);
	sn = netdev_priv(netdev);
	sn->pdev = pdev;
	sn->netdev = netdev;
	sn->bar0 = pcim_iomap_table(pdev)[NH_SIMNIC_BAR_REGS];
	sn->shm = pcim_iomap_table(pdev)[NH_SIMNIC_BAR_SHM];
	sn->shm_len = pci_resource_len(pdev, NH_SIMNIC_BAR_SHM);
	mutex_init(&sn->lock);
	spin_lock_init(&sn->eims_lock);
	u64_stats_init(&sn->rx_stats.syncp);
	u64_stats_init(&sn->tx_stats.syncp);
	u64_stats_init(&sn->xmit_stats.syncp);
	pci_set_drvdata(pdev, sn);

	if (sn->shm_len < NH_SIM_DIRECTORY_OFFSET + sizeof(dir) ||
	    readq(sn->shm) != NH_SIM_MAGIC) {
		dev_err(dev, "no simulated machine in BAR2 (0x%llx bytes, magic 0x%llx)\n",
			(u64)sn->shm_len,
			sn->shm_len >= 8 ? readq(sn->shm) : 0ULL);
		return -ENODEV;
	}
	memcpy_fromio(&dir, sn->shm + NH_SIM_DIRECTORY_OFFSET, sizeof(dir));
	err = nh_simnic_check_directory(sn, &dir);
	if (err)
		return err;
	err = nh_simnic_find_slot(sn, &dir);
	if (err)
		return err;
	err = nh_simnic_map_nic(sn, &dir);
	if (err)
		return err;
	sn->doorbell_device = dir.machine_peer_id << 16 | NH_SIM_MACHINE_VEC_DEVICE;

	vectors = NH_SIM_IVSHMEM_VEC_NIC0 + sn->nic.msix_entries;
	err = pci_alloc_irq_vectors(pdev, vectors, vectors, PCI_IRQ_MSIX);
	if (err < 0) {
		dev_err(dev, "needs %d MSI-X vectors, the function has %d (QEMU: -device ivshmem-doorbell,vectors=%d)\n",
			vectors, pci_msix_vec_count(pdev), vectors);
		return err;
	}
	pci_set_master(pdev);
	err = nh_simnic_request_irqs(sn);
	if (err)
		return err;

	netdev->netdev_ops = &nh_simnic_netdev_ops;
	netdev->ethtool_ops = &nh_simnic_ethtool_ops;
	netdev->max_mtu = min_t(u32, ETH_DATA_LEN, sn->nic.buf_size - ETH_HLEN);
	netdev->mtu = netdev->max_mtu;
	eth_hw_addr_set(netdev, dir.nic_mac);
	netif_napi_add(netdev, &sn->napi, nh_simnic_poll);

	mutex_lock(&sn->lock);
	err = nh_simnic_decide_role(sn);
	mutex_unlock(&sn->lock);
	if (err)
		goto err_napi;

	/* The carrier is on from allocation: the simulated link never drops. */
	err = register_netdev(netdev);
	if (err)
		goto err_role;

	sn->hd.id = sn->nic.bdf;
	sn->hd.netdev = netdev;
	sn->hd.dev = dev;
	sn->hd.ops = &nh_simnic_handover_ops;
	sn->hd.commit_ops = &nh_simnic_commit_ops;
	sn->hd.msix_table = sn->nic.msix;
	sn->hd.msix_entries = sn->nic.msix_entries;
	sn->hd.queue_count = 1;
	sn->hd.start = sn->role == NH_SIMNIC_RUNNING ?
		       NH_HANDOVER_START_RUNNING : NH_HANDOVER_START_STANDBY;
	sn->hd.priv = sn;
	err = nh_handover_register(&sn->hd);
	if (err) {
		dev_err(dev, "registration with the handover hook failed: %d\n",
			err);
		goto err_netdev;
	}
	sn->hd_registered = true;
	netdev_info(netdev, "node %u, NIC %s, MAC %pM, %s\n", sn->node_index,
		    sn->nic.bdf, netdev->dev_addr,
		    sn->role == NH_SIMNIC_RUNNING ? "owner" : "standby");
	return 0;

err_netdev:
	unregister_netdev(netdev);
err_role:
	if (sn->role == NH_SIMNIC_RUNNING)
		nh_simnic_set_running_node(sn, false);
	nh_simnic_uninstall_vectors(sn);
err_napi:
	netif_napi_del(&sn->napi);
	return err;
}

static void nh_simnic_remove(struct pci_dev *pdev)
{
	struct nh_simnic *sn = pci_get_drvdata(pdev);

	/* No handover op runs after this returns. */
	if (sn->hd_registered)
		nh_handover_unregister(&sn->hd);
	unregister_netdev(sn->netdev);
	mutex_lock(&sn->lock);
	/*
	 * The NIC keeps running without a driver: RX stays enabled and the
	 * ring fills; the node's next driver adopts it from the registers.
	 */
	if (sn->role != NH_SIMNIC_STANDBY)
		nh_simnic_set_running_node(sn, false);
	nh_simnic_uninstall_vectors(sn);
	mutex_unlock(&sn->lock);
	netif_napi_del(&sn->napi);
}

static const struct pci_device_id nh_simnic_ids[] = {
	{ PCI_DEVICE(NH_SIM_IVSHMEM_VENDOR, NH_SIM_IVSHMEM_DEVICE) },
	{ }
};
MODULE_DEVICE_TABLE(pci, nh_simnic_ids);

static struct pci_driver nh_simnic_driver = {
	.name = NH_SIMNIC_DRV_NAME,
	.id_table = nh_simnic_ids,
	.probe = nh_simnic_probe,
	.remove = nh_simnic_remove,
};
module_pci_driver(nh_simnic_driver);

MODULE_DESCRIPTION("Copy-mode driver for the nichandover simulated NIC behind ivshmem");
MODULE_AUTHOR("nichandover");
MODULE_LICENSE("GPL");
