// SPDX-License-Identifier: GPL-2.0
/*
 * nh_quiesce.c - close the data path of a NIC and open it again.
 *
 * The order follows the driver's own down path (e1000e_down): stop TX and
 * wait out an xmit in progress, wait for TX completions, let NAPI finish
 * and disable it, mask the vectors.  Resume is the exact reverse.
 *
 * The TX gate is the queue's FROZEN bit, set under each queue's xmit lock.
 * Every caller of dev_hard_start_xmit() (sch_direct_xmit, the no-queue
 * path of __dev_queue_xmit, dev_direct_xmit, pktgen) checks it before
 * calling ndo_start_xmit, and unlike the DRV_XOFF bit that a plain
 * netif_tx_stop_queue() sets, no driver clears it: e1000e's TX clean wakes
 * a stopped queue as soon as descriptors are free.  netif_device_detach()
 * then keeps the TX watchdog quiet (it skips devices that are not present;
 * otherwise it resets the adapter after ~5 s of stopped queues) and makes
 * netpoll drop instead of transmitting.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>

#include "nh_internal.h"

/**
 * nh_bql_inflight() - bytes handed to the driver and not yet completed
 * @dev: the device
 *
 * Return: the sum of the byte queue limits' in-flight bytes of all queues.
 */
u64 nh_bql_inflight(struct net_device *dev)
{
	u64 sum = 0;
#ifdef CONFIG_BQL
	unsigned int i;

	for (i = 0; i < dev->real_num_tx_queues; i++) {
		struct dql *dql = &netdev_get_tx_queue(dev, i)->dql;

		sum += (unsigned int)(READ_ONCE(dql->num_queued) -
				      READ_ONCE(dql->num_completed));
	}
#endif
	return sum;
}

static u64 nh_tx_packets(struct net_device *dev)
{
	struct rtnl_link_stats64 stats;

	dev_get_stats(dev, &stats);
	return stats.tx_packets;
}

/* Freeze every TX queue under its xmit lock, then detach the device. */
static void nh_gate_close(struct net_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);

		/* Taking the lock waits out an ndo_start_xmit in progress. */
		__netif_tx_lock_bh(txq);
		set_bit(__QUEUE_STATE_FROZEN, &txq->state);
		netif_tx_stop_queue(txq);
		__netif_tx_unlock_bh(txq);
	}
	netif_device_detach(dev);
}

static void nh_gate_open(struct net_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);

		__netif_tx_lock_bh(txq);
		clear_bit(__QUEUE_STATE_FROZEN, &txq->state);
		/* The queue was idle, not hung: give the watchdog a fresh start. */
		WRITE_ONCE(txq->trans_start, jiffies);
		__netif_tx_unlock_bh(txq);
	}
	/* Wakes the queues (schedules the held skbs) and the watchdog. */
	netif_device_attach(dev);
}

static bool nh_napi_busy(const struct napi_struct *napi)
{
	return test_bit(NAPI_STATE_SCHED, &napi->state) ||
	       test_bit(NAPI_STATE_NPSVC, &napi->state);
}

/*
 * napi_disable() waits for a scheduled poll with no deadline; a NAPI that is
 * already disabled (by the driver's reset, say) stays "scheduled" forever.
 * Wait for it to go idle under our own deadline first, so the wait inside
 * napi_disable() is at most one poll.
 */
static int nh_napi_disable_all(struct nh_dev *d, struct net_device *dev,
			       unsigned long deadline,
			       struct netlink_ext_ack *extack)
{
	struct napi_struct *napi;

	list_for_each_entry(napi, &dev->napi_list, dev_list) {
		unsigned int i;
		bool mine = false;

		for (i = 0; i < d->n_napis; i++)
			mine |= d->napis[i] == napi;
		if (mine)
			continue;
		if (d->n_napis == NH_MAX_NAPI) {
			NL_SET_ERR_MSG_MOD(extack, "device has too many NAPI instances");
			return -E2BIG;
		}
		while (nh_napi_busy(napi)) {
			if (time_after(jiffies, deadline)) {
				NL_SET_ERR_MSG_MOD(extack,
						   "a NAPI poll was still scheduled at the deadline (NAPI disabled by someone else?)");
				return -ETIMEDOUT;
			}
			usleep_range(50, 200);
		}
		napi_disable(napi);
		d->napis[d->n_napis++] = napi;
	}
	WRITE_ONCE(d->napi_off, true);
	return 0;
}

/*
 * Mask now, not lazily at the next interrupt: with IRQ_DISABLE_UNLAZY,
 * disable_irq() masks the MSI-X entry at once (and waits for a running
 * handler), so the device holds new interrupts in its pending bits.
 */
static int nh_mask_vectors(struct nh_dev *d, struct pci_dev *pdev,
			   struct netlink_ext_ack *extack)
{
	unsigned int irqs[NH_MAX_VECTORS];
	int n, i;

	if (d->irqs_masked)
		return 0;
	n = nh_msi_irqs(pdev, irqs, NH_MAX_VECTORS);
	if (n < 0) {
		NL_SET_ERR_MSG_MOD(extack, "device has too many vectors");
		return n;
	}
	for (i = 0; i < n; i++) {
		irq_set_status_flags(irqs[i], IRQ_DISABLE_UNLAZY);
		disable_irq(irqs[i]);
		d->irqs[d->irqs_masked++] = irqs[i];
	}
	return 0;
}

/**
 * nh_quiesce() - close the gates, drain, disable NAPI, mask the vectors
 * @d: the function's slot
 * @pdev: the function
 * @timeout_ms: deadline for the drain and the NAPI wait
 * @extack: where errors are explained
 *
 * A retry after a timeout continues where the last attempt stopped.
 *
 * Context: rtnl_lock held (the device cannot go down meanwhile).
 * Return: 0; -ENODEV, -ENETDOWN or -EBUSY if the device cannot be
 * quiesced; -ETIMEDOUT if the drain did not finish (the gate stays closed
 * and RESUME reopens it).
 */
int nh_quiesce(struct nh_dev *d, struct pci_dev *pdev, unsigned int timeout_ms,
	       struct netlink_ext_ack *extack)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	ktime_t start = ktime_get();
	struct net_device *dev;
	u64 inflight;
	int err;

	ASSERT_RTNL();
	if (d->quiesced)
		return 0;
	dev = d->gated ? d->gated_dev : nh_netdev_of(pdev);
	if (!dev) {
		NL_SET_ERR_MSG_MOD(extack, "no network interface on this PCI function");
		return -ENODEV;
	}
	if (!d->gated) {
		/* NAPI of a down device is already disabled: napi_disable spins. */
		if (!netif_running(dev)) {
			NL_SET_ERR_MSG_MOD(extack, "interface is down");
			return -ENETDOWN;
		}
		if (!netif_device_present(dev)) {
			NL_SET_ERR_MSG_MOD(extack, "interface is detached (suspended or in reset)");
			return -EBUSY;
		}
		atomic64_set(&d->held_xmits, 0);
		atomic64_set(&d->xmits_while_quiesced, 0);
		atomic64_set(&d->polls_while_quiesced, 0);
		atomic64_set(&d->drain_rx_work, 0);
		d->tx_packets_at_gate = nh_tx_packets(dev);
		nh_gate_close(dev);
		d->drained_tx_bytes = nh_bql_inflight(dev);
		d->gated = true;
		/* Count only what passes the closed gate. */
		WRITE_ONCE(d->gated_dev, dev);
	}

	while ((inflight = nh_bql_inflight(dev)) != 0) {
		if (time_after(jiffies, deadline)) {
			netdev_warn(dev, "TX drain timed out, %llu bytes in flight\n",
				    inflight);
			NL_SET_ERR_MSG_MOD(extack, "TX completions did not drain before the deadline");
			return -ETIMEDOUT;
		}
		usleep_range(500, 1000);
	}
	d->drained_tx_packets = nh_tx_packets(dev) - d->tx_packets_at_gate;

	if (!d->napi_off) {
		err = nh_napi_disable_all(d, dev, deadline, extack);
		if (err)
			return err;
	}
	err = nh_mask_vectors(d, pdev, extack);
	if (err)
		return err;
	d->quiesced = true;
	d->quiesce_ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	netdev_info(dev, "quiesced in %llu us: %llu TX bytes drained\n",
		    d->quiesce_ns / NSEC_PER_USEC, d->drained_tx_bytes);
	return 0;
}

/**
 * nh_resume() - undo whatever nh_quiesce() did, in reverse order
 * @d: the function's slot
 *
 * Also used when the device goes down while gated and at module unload.
 *
 * Context: rtnl_lock held.
 */
void nh_resume(struct nh_dev *d)
{
	struct net_device *dev = d->gated_dev;
	unsigned int i;

	ASSERT_RTNL();
	while (d->irqs_masked) {
		unsigned int irq = d->irqs[--d->irqs_masked];

		enable_irq(irq);
		irq_clear_status_flags(irq, IRQ_DISABLE_UNLAZY);
	}
	WRITE_ONCE(d->napi_off, false);
	for (i = 0; i < d->n_napis; i++) {
		napi_enable(d->napis[i]);
		/*
		 * e1000e auto-masks a vector that fired while NAPI was off and
		 * unmasks it only at the end of a poll: run one.
		 */
		local_bh_disable();
		napi_schedule(d->napis[i]);
		local_bh_enable();
	}
	d->n_napis = 0;
	if (d->gated && dev) {
		WRITE_ONCE(d->gated_dev, NULL);
		nh_gate_open(dev);
	}
	d->gated = false;
	d->quiesced = false;
}
