// SPDX-License-Identifier: GPL-2.0
/*
 * The safe (cold) mode, for drivers without the handover
 * contract.
 *
 * QUIESCE gates TX in the stack and waits for the completions: each TX
 * queue's FROZEN bit is set under the queue's xmit lock (taking the lock
 * waits out an ndo_start_xmit in progress; every caller of
 * dev_hard_start_xmit checks the bit under that lock, and no driver clears
 * it, unlike the DRV_XOFF bit that its TX clean wakes), then BQL's
 * in-flight bytes must reach 0.  Skbs wait in the qdisc.  The driver's
 * NAPI, queues, registers and interrupts are not touched: its own paths
 * (close, reset, ethtool, suspend) keep working.
 *
 * RELEASE is the driver's own close and unbind (device_release_driver:
 * the driver stops DMA, frees its vectors and disables bus mastering);
 * the function's driver_override then names no driver, so no driver
 * binds it again behind the new owner's back.  ATTACH binds the driver,
 * whose probe programs the device and its interrupts from scratch.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/device.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>

#include "nh_internal.h"

/* A driver_override that matches no driver: the function stays unbound. */
#define NH_NO_DRIVER "nichandover-released"

/**
 * nh_netdev_of() - the interface a PCI function's driver registered
 * @pdev: the function
 * @net: the network namespace to look in
 *
 * Context: rcu_read_lock held; under rtnl_lock the result stays registered
 * until it is dropped.
 * Return: the interface, or NULL.
 */
struct net_device *nh_netdev_of(struct pci_dev *pdev, struct net *net)
{
	struct net_device *dev;

	for_each_netdev_rcu(net, dev) {
		if (dev->dev.parent == &pdev->dev)
			return dev;
	}
	return NULL;
}

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

static void nh_gate_close(struct net_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);

		__netif_tx_lock_bh(txq);
		set_bit(__QUEUE_STATE_FROZEN, &txq->state);
		__netif_tx_unlock_bh(txq);
	}
}

static void nh_gate_open(struct net_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);

		__netif_tx_lock_bh(txq);
		clear_bit(__QUEUE_STATE_FROZEN, &txq->state);
		__netif_tx_unlock_bh(txq);
		/* Send what waited in the qdisc. */
		netif_schedule_queue(txq);
	}
}

/**
 * nh_gate_lost() - the gated interface is going down or away
 * @d: the device
 * @dev: its interface
 *
 * Opens the gate (the interface may come up again) and leaves the rest to
 * a work item that takes the device's lock, which cannot be taken here.
 *
 * Context: rtnl_lock held (the netdevice notifier).
 */
void nh_gate_lost(struct nh_dev *d, struct net_device *dev)
{
	ASSERT_RTNL();
	netdev_info(dev, "%s: going down while quiesced: quiesce dropped\n",
		    d->id);
	nh_gate_open(dev);
	WRITE_ONCE(d->gated_dev, NULL);
	WRITE_ONCE(d->gate_lost, true);
	schedule_work(&d->abandon_work);
}

/* Give back the quiesce of an interface that went away. */
void nh_abandon_work(struct work_struct *work)
{
	struct nh_dev *d = container_of(work, struct nh_dev, abandon_work);

	mutex_lock(&d->lock);
	if (READ_ONCE(d->gate_lost) && !d->hd && !d->reclaimed &&
	    (d->state == NH_STATE_GATED || d->state == NH_STATE_QUIESCED)) {
		nh_unhold(d);
		nh_set_state(d, NH_STATE_RUNNING);
	}
	WRITE_ONCE(d->gate_lost, false);
	mutex_unlock(&d->lock);
}

/* Open the gate if it is still closed. */
static void nh_cold_ungate(struct nh_dev *d)
{
	struct net_device *dev;

	rtnl_lock();
	dev = d->gated_dev;
	if (dev) {
		WRITE_ONCE(d->gated_dev, NULL);
		nh_gate_open(dev);
	}
	rtnl_unlock();
}

/* What the cold mode refuses to quiesce, and why. */
static int nh_cold_check(struct pci_dev *pdev, struct net_device *dev,
			 struct netlink_ext_ack *extack)
{
	ASSERT_RTNL();
	if (!dev) {
		NL_SET_ERR_MSG_MOD(extack, "no interface on this function here");
		return -ENODEV;
	}
	if (pci_channel_offline(pdev)) {
		NL_SET_ERR_MSG_MOD(extack, "PCI error recovery in progress");
		return -EBUSY;
	}
	if (!netif_running(dev)) {
		NL_SET_ERR_MSG_MOD(extack, "interface is down");
		return -ENETDOWN;
	}
	if (!netif_device_present(dev)) {
		NL_SET_ERR_MSG_MOD(extack, "interface is detached (suspended or in reset)");
		return -EBUSY;
	}
	if (dev_xdp_prog_count(dev)) {
		NL_SET_ERR_MSG_MOD(extack,
				   "an XDP program is loaded: XDP transmit bypasses the gate");
		return -EBUSY;
	}
	return 0;
}

/* Wait for BQL's in-flight bytes to reach 0, without rtnl. */
static int nh_cold_drain(struct nh_dev *d, unsigned int timeout_ms,
			 struct netlink_ext_ack *extack)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	struct net_device *dev;
	u64 inflight;

	for (;;) {
		/* Unregister frees the interface only a grace period after
		 * the notifier cleared @gated_dev.
		 */
		rcu_read_lock();
		dev = READ_ONCE(d->gated_dev);
		inflight = dev ? nh_bql_inflight(dev) : 0;
		rcu_read_unlock();
		if (!dev) {
			NL_SET_ERR_MSG_MOD(extack, "interface went down during the drain");
			return -ENETDOWN;
		}
		if (!inflight)
			return 0;
		if (time_after(jiffies, deadline)) {
			NL_SET_ERR_MSG_MOD(extack,
					   "TX completions did not drain before the deadline");
			return -ETIMEDOUT;
		}
		if (fatal_signal_pending(current))
			return -EINTR;
		usleep_range(1000, 2000);
	}
}

/**
 * nh_cold_quiesce() - gate TX at the stack and drain
 * @d: the device (running)
 * @pdev: its PCI function
 * @net: the requester's network namespace
 * @timeout_ms: deadline of the drain
 * @extack: where errors are explained
 *
 * Context: @d->lock held, rtnl not held.
 * Return: 0 (state QUIESCED), or a negative errno with the gate open again
 * (state RUNNING).
 */
int nh_cold_quiesce(struct nh_dev *d, struct pci_dev *pdev, struct net *net,
		    unsigned int timeout_ms, struct netlink_ext_ack *extack)
{
	ktime_t start = ktime_get();
	struct net_device *dev;
	int err;

	lockdep_assert_held(&d->lock);
	if (nh_fault_hit(&nh_fault_quiesce, NH_FAULT_BEFORE)) {
		NL_SET_ERR_MSG_MOD(extack, "fault injected before the gate");
		return -EIO;
	}
	/* Runtime resume may take rtnl in the driver: hold before locking. */
	nh_hold(d, &pdev->dev);
	rtnl_lock();
	rcu_read_lock();
	dev = nh_netdev_of(pdev, net);
	rcu_read_unlock();
	err = nh_cold_check(pdev, dev, extack);
	if (!err) {
		nh_gate_close(dev);
		d->drained_tx_bytes = nh_bql_inflight(dev);
		WRITE_ONCE(d->gate_lost, false);
		WRITE_ONCE(d->gated_dev, dev);
		nh_set_state(d, NH_STATE_GATED);
	}
	rtnl_unlock();
	if (err) {
		nh_unhold(d);
		return err;
	}

	nh_stall();
	err = nh_cold_drain(d, timeout_ms, extack);
	if (!err && nh_fault_hit(&nh_fault_quiesce, NH_FAULT_AFTER)) {
		NL_SET_ERR_MSG_MOD(extack, "fault injected after the drain; gate opened again");
		err = -EIO;
	}
	if (err) {
		nh_cold_ungate(d);
		nh_unhold(d);
		nh_set_state(d, NH_STATE_RUNNING);
		return err;
	}
	d->quiesce_ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	nh_set_state(d, NH_STATE_QUIESCED);
	return 0;
}

/* Point the function's driver_override at no driver, keeping the old one. */
static int nh_override_block(struct nh_dev *d, struct pci_dev *pdev)
{
	const char *old;
	int err;

	kfree(d->saved_override);
	d->saved_override = NULL;
	device_lock(&pdev->dev);
	old = pdev->driver_override;
	if (old)
		d->saved_override = kstrdup(old, GFP_KERNEL);
	device_unlock(&pdev->dev);
	if (old && !d->saved_override)
		return -ENOMEM;
	err = driver_set_override(&pdev->dev, &pdev->driver_override,
				  NH_NO_DRIVER, strlen(NH_NO_DRIVER));
	if (err) {
		kfree(d->saved_override);
		d->saved_override = NULL;
	}
	return err;
}

static int nh_override_restore(struct nh_dev *d, struct pci_dev *pdev)
{
	const char *s = d->saved_override;

	/* An empty string clears the override. */
	return driver_set_override(&pdev->dev, &pdev->driver_override,
				   s ?: "", s ? strlen(s) : 0);
}

/**
 * nh_cold_release() - the driver's own close and unbind
 * @d: the device (quiesced)
 * @pdev: its PCI function
 * @extack: where errors are explained
 *
 * Context: @d->lock held, rtnl not held (the driver's remove takes it).
 * Return: 0 (state RELEASED), or a negative errno with nothing changed.
 */
int nh_cold_release(struct nh_dev *d, struct pci_dev *pdev,
		    struct netlink_ext_ack *extack)
{
	int err;

	lockdep_assert_held(&d->lock);
	err = nh_override_block(d, pdev);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "could not set driver_override");
		return err;
	}
	/* The unbind closes the interface: that is not a lost gate. */
	rtnl_lock();
	WRITE_ONCE(d->gated_dev, NULL);
	rtnl_unlock();
	device_release_driver(&pdev->dev);
	/* The driver is gone from the device: its module may be unloaded. */
	module_put(d->driver_module);
	d->driver_module = NULL;
	nh_set_state(d, NH_STATE_RELEASED);
	pci_info(pdev, "released: driver unbound, driver_override %s\n",
		 NH_NO_DRIVER);
	return 0;
}

/**
 * nh_cold_attach() - bind the driver: this node runs the device from now
 * @d: the device (released, reclaimed, or never held here)
 * @pdev: its PCI function
 * @extack: where errors are explained
 *
 * A function its driver has bound already (it arrived by hot-plug) is
 * taken as it is.
 *
 * Context: @d->lock held, rtnl not held (the driver's probe takes it).
 * Return: 0 (state RUNNING), or a negative errno with the function unbound
 * and, if it was released, still released.
 */
int nh_cold_attach(struct nh_dev *d, struct pci_dev *pdev,
		   struct netlink_ext_ack *extack)
{
	bool was_blocked = d->state != NH_STATE_RUNNING;
	int ret;

	lockdep_assert_held(&d->lock);
	if (pdev->dev.driver) {
		/*
		 * Bound already: the function arrived by hot-plug and its
		 * driver probed it (a released function here cannot be bound:
		 * its driver_override names no driver).
		 */
		goto running;
	}
	if (nh_fault_hit(&nh_fault_attach, NH_FAULT_BEFORE)) {
		NL_SET_ERR_MSG_MOD(extack, "fault injected before the bind");
		return -EIO;
	}
	if (was_blocked) {
		ret = nh_override_restore(d, pdev);
		if (ret) {
			NL_SET_ERR_MSG_MOD(extack, "could not restore driver_override");
			return ret;
		}
	}
	ret = device_attach(&pdev->dev);
	if (ret > 0 && nh_fault_hit(&nh_fault_attach, NH_FAULT_AFTER)) {
		device_release_driver(&pdev->dev);
		NL_SET_ERR_MSG_MOD(extack, "fault injected after the bind; unbound again");
		ret = -EIO;
	} else if (!ret) {
		NL_SET_ERR_MSG_MOD(extack, "no driver took the function (driver module loaded?)");
		ret = -ENODEV;
	} else if (ret < 0) {
		NL_SET_ERR_MSG_MOD(extack, "the driver's probe failed");
	}
	if (ret < 0) {
		if (was_blocked)
			nh_override_block(d, pdev);
		return ret;
	}
	pci_info(pdev, "attached: bound to %s\n", pdev->dev.driver ?
		 pdev->dev.driver->name : "?");
running:
	kfree(d->saved_override);
	d->saved_override = NULL;
	nh_unhold(d);
	d->reclaimed = false;
	nh_set_state(d, NH_STATE_RUNNING);
	return 0;
}

/**
 * nh_cold_resume() - undo a quiesce, or bind a reclaimed function
 * @d: the device (quiesced)
 * @pdev: its PCI function
 * @extack: where errors are explained
 *
 * Context: @d->lock held, rtnl not held.
 * Return: 0 (state RUNNING), or a negative errno.
 */
int nh_cold_resume(struct nh_dev *d, struct pci_dev *pdev,
		   struct netlink_ext_ack *extack)
{
	lockdep_assert_held(&d->lock);
	if (d->reclaimed)
		return nh_cold_attach(d, pdev, extack);
	nh_cold_ungate(d);
	nh_unhold(d);
	nh_set_state(d, NH_STATE_RUNNING);
	return 0;
}
