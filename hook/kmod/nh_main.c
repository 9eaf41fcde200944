// SPDX-License-Identifier: GPL-2.0
/*
 * Module life cycle, the device registry, the driver handover
 * contract's registration, the netdevice notifier and the debugfs fault
 * knobs.
 *
 * The registry is a list of struct nh_dev keyed by the machine-wide PCI
 * name.  Entries are added by the contract's registration or by the first
 * request that changes a PCI function, and stay until the module is
 * unloaded: a device's highest epoch must outlive its driver.
 *
 * The module never holds a net_device reference between requests (one held
 * across NETDEV_UNREGISTER blocks unplug); the cold mode's gated interface
 * is a plain pointer that the notifier clears.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/pm_runtime.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>

#include "nh_internal.h"

static LIST_HEAD(nh_devs);
static DEFINE_MUTEX(nh_devs_lock);
static struct dentry *nh_debugfs;

/* debugfs fault knobs (docs/hook.md): one-shot, enum nh_fault values. */
u32 nh_fault_quiesce;
u32 nh_fault_attach;
/* debugfs: a QUIESCE waits this long (ms) before it drains, interruptibly. */
u32 nh_quiesce_stall_ms;
u32 nh_attach_stall_ms;

/**
 * nh_dev_find() - the registry entry of a device
 * @id: the machine-wide PCI name
 * @create: add an entry if there is none
 *
 * Entries are never freed before module unload, so the pointer stays
 * valid after the registry lock is dropped.
 *
 * Return: the entry, or NULL (none and @create false, or out of memory).
 */
struct nh_dev *nh_dev_find(const char *id, bool create)
{
	struct nh_dev *d;

	mutex_lock(&nh_devs_lock);
	list_for_each_entry(d, &nh_devs, node) {
		if (!strcmp(d->id, id))
			goto out;
	}
	d = NULL;
	if (!create || strlen(id) >= NH_PCI_DEV_LEN)
		goto out;
	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		goto out;
	strscpy(d->id, id, sizeof(d->id));
	mutex_init(&d->lock);
	INIT_WORK(&d->abandon_work, nh_abandon_work);
	INIT_WORK(&d->commit_work, nh_commit_work);
	d->state = NH_STATE_RUNNING;
	list_add_tail(&d->node, &nh_devs);
out:
	mutex_unlock(&nh_devs_lock);
	return d;
}

/**
 * nh_dev_at() - the registry entry at a position, for the LIST dump
 * @index: position, from 0
 *
 * Return: the entry, or NULL past the end.
 */
struct nh_dev *nh_dev_at(unsigned int index)
{
	struct nh_dev *d, *found = NULL;

	mutex_lock(&nh_devs_lock);
	list_for_each_entry(d, &nh_devs, node) {
		if (!index--) {
			found = d;
			break;
		}
	}
	mutex_unlock(&nh_devs_lock);
	return found;
}

void nh_set_state(struct nh_dev *d, enum nh_state state)
{
	WRITE_ONCE(d->state, state);
}

/**
 * nh_hold() - take what a quiesced or released device needs held
 * @d: the device
 * @dev: the device its driver is bound to
 *
 * This module (a released device must never be reopened by an unload),
 * the driver's module (its remove would run on a device it no longer
 * owns), and a runtime PM usage count (the device must stay powered while
 * another node may drive it).
 *
 * Context: @d->lock held; not under rtnl_lock or @dev's device lock.
 * Lock order: @d->lock, then @dev's device lock (cold mode only).
 */
void nh_hold(struct nh_dev *d, struct device *dev)
{
	lockdep_assert_held(&d->lock);
	if (d->held)
		return;
	__module_get(THIS_MODULE);
	/*
	 * A contract driver stays bound while registered: its remove waits
	 * for @d->lock in nh_handover_unregister() (so taking the device
	 * lock here would invert that order).  Otherwise the device lock
	 * keeps the driver bound while it is pinned.
	 */
	if (!d->hd)
		device_lock(dev);
	if (dev->driver && try_module_get(dev->driver->owner))
		d->driver_module = dev->driver->owner;
	if (!d->hd)
		device_unlock(dev);
	/* A failed resume still counts as a usage; the device stays active. */
	pm_runtime_get_sync(dev);
	d->pm_dev = get_device(dev);
	d->held = true;
}

/**
 * nh_unhold() - give back what nh_hold() took
 * @d: the device
 *
 * Context: @d->lock held.
 */
void nh_unhold(struct nh_dev *d)
{
	lockdep_assert_held(&d->lock);
	if (!d->held)
		return;
	pm_runtime_put(d->pm_dev);
	put_device(d->pm_dev);
	d->pm_dev = NULL;
	module_put(d->driver_module);
	d->driver_module = NULL;
	d->held = false;
	module_put(THIS_MODULE);
}

/**
 * nh_fault_hit() - whether a debugfs fault knob fires at this step
 * @knob: the knob
 * @step: the step being run
 *
 * Return: true once per arming (the knob is reset to NH_FAULT_NONE).
 */
bool nh_fault_hit(u32 *knob, enum nh_fault step)
{
	return READ_ONCE(*knob) == step && cmpxchg(knob, step, NH_FAULT_NONE) == step;
}

/**
 * nh_stall_ms() - a debugfs stall
 * @knob: milliseconds to wait, 0 for none
 *
 * Lets a test observe a request that is waiting, or act (kill a daemon)
 * at a known point of a handover.
 */
void nh_stall_ms(const u32 *knob)
{
	u32 ms = READ_ONCE(*knob);

	if (ms)
		msleep_interruptible(ms);
}

/* The QUIESCE stall (before the drain). */
void nh_stall(void)
{
	nh_stall_ms(&nh_quiesce_stall_ms);
}

/**
 * nh_refresh_config() - cache a contract device's config space
 * @d: the device
 *
 * Context: @d->lock held, @d->hd set.
 */
void nh_refresh_config(struct nh_dev *d)
{
	struct nh_handover_dev *hd = d->hd;
	int n;

	lockdep_assert_held(&d->lock);
	if (!hd->ops->read_config)
		return;
	n = hd->ops->read_config(hd, 0, d->config, sizeof(d->config));
	if (n < PCI_DEVICE_ID + 2)
		return;
	d->config_len = n;
	d->vendor = d->config[PCI_VENDOR_ID] | d->config[PCI_VENDOR_ID + 1] << 8;
	d->device = d->config[PCI_DEVICE_ID] | d->config[PCI_DEVICE_ID + 1] << 8;
}

static int nh_handover_check(const struct nh_handover_dev *hd)
{
	const struct nh_handover_ops *ops = hd->ops;

	if (!hd->id || !hd->netdev || !hd->dev || !ops || !ops->quiesce ||
	    !ops->resume || !ops->release || !ops->attach ||
	    strnlen(hd->id, NH_PCI_DEV_LEN) >= NH_PCI_DEV_LEN)
		return -EINVAL;
	if (!ops->reserve_vectors != !ops->unreserve_vectors)
		return -EINVAL;
	/* The kernel commit path needs all four, and reserved vectors. */
	if (hd->commit_ops &&
	    (!hd->commit_ops->cas_record || !hd->commit_ops->write_rings ||
	     !hd->commit_ops->read_rings || !hd->commit_ops->ring_doorbell ||
	     !ops->reserve_vectors || !hd->msix_table))
		return -EINVAL;
	if (hd->msix_table && (!hd->msix_entries || hd->msix_entries > 2048))
		return -EINVAL;
	if (hd->start != NH_HANDOVER_START_RUNNING &&
	    hd->start != NH_HANDOVER_START_STANDBY)
		return -EINVAL;
	return 0;
}

/**
 * nh_handover_register() - offer a device for live handover
 * @hd: the device, its operations and its MSI-X window; must stay valid
 *	until nh_handover_unregister()
 *
 * After this returns 0 the hook's netlink requests naming @hd->id call
 * @hd->ops instead of the cold (unbind/bind) mode.  A device this module
 * holds released at some epoch can only come back on standby: registering
 * it as running is refused, since another node owns it.
 *
 * Context: process context, may sleep; not under rtnl_lock.
 * Return: 0; -EINVAL for an incomplete @hd; -EEXIST if @hd->id is already
 * registered; -EBUSY if the module holds the device released or quiesced;
 * -ENOMEM.
 */
int nh_handover_register(struct nh_handover_dev *hd)
{
	struct nh_dev *d;
	int err;

	might_sleep();
	err = nh_handover_check(hd);
	if (err)
		return err;
	d = nh_dev_find(hd->id, true);
	if (!d)
		return -ENOMEM;
	mutex_lock(&d->lock);
	if (d->hd) {
		err = -EEXIST;
		goto out;
	}
	switch (d->state) {
	case NH_STATE_RUNNING:
		break;
	case NH_STATE_RELEASED:
	case NH_STATE_STANDBY:
		if (hd->start == NH_HANDOVER_START_STANDBY)
			break;
		fallthrough;
	default:
		err = -EBUSY;
		goto out;
	}
	WRITE_ONCE(d->hd, hd);
	WRITE_ONCE(hd->hook_private, d);
	d->queue_count = hd->queue_count;
	strscpy(d->driver, hd->dev->driver ? hd->dev->driver->name :
		module_name(THIS_MODULE), sizeof(d->driver));
	d->config_len = 0;
	nh_refresh_config(d);
	if (hd->start == NH_HANDOVER_START_STANDBY && d->state == NH_STATE_RUNNING)
		nh_set_state(d, NH_STATE_STANDBY);
	netdev_info(hd->netdev, "%s registered for handover (%s)\n", hd->id,
		    d->state == NH_STATE_RUNNING ? "running" : "standby");
out:
	mutex_unlock(&d->lock);
	return err;
}
EXPORT_SYMBOL_GPL(nh_handover_register);

/**
 * nh_handover_unregister() - withdraw a device registered for handover
 * @hd: the device given to nh_handover_register()
 *
 * Waits for an operation in progress on the device to finish; no op of @hd
 * is called after this returns.  A device the module holds released or on
 * standby stays recorded so (a later registration can only be on standby);
 * a quiesced one is forgotten (the driver's remove stops it).
 *
 * Context: process context, may sleep; not under rtnl_lock.
 */
void nh_handover_unregister(struct nh_handover_dev *hd)
{
	struct nh_dev *d = hd->hook_private;

	might_sleep();
	if (!d)
		return;
	mutex_lock(&d->lock);
	if (d->hd == hd) {
		nh_unhold(d);
		if (d->reserved_vectors && hd->ops->unreserve_vectors)
			hd->ops->unreserve_vectors(hd);
		d->reserved_vectors = 0;
		nh_commit_disarm(d);
		if (d->state != NH_STATE_RELEASED && d->state != NH_STATE_STANDBY)
			nh_set_state(d, NH_STATE_RUNNING);
		d->reclaimed = false;
		WRITE_ONCE(d->hd, NULL);
	}
	WRITE_ONCE(hd->hook_private, NULL);
	mutex_unlock(&d->lock);
	/* STATUS and LIST read @hd->netdev under RCU. */
	synchronize_rcu();
}
EXPORT_SYMBOL_GPL(nh_handover_unregister);

/*
 * Cold mode: an interface whose TX gate is closed is going down or away
 * (ip link set down, the driver's unbind or unload, a reset that closes
 * it).  Its close runs as it always does (the module took nothing from
 * the driver); the quiesce is dropped.  A released device has no gated
 * interface (its driver was unbound) and is never reopened here.
 */
static int nh_netdev_event(struct notifier_block *nb, unsigned long event,
			   void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct nh_dev *d;

	if (event != NETDEV_GOING_DOWN && event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	mutex_lock(&nh_devs_lock);
	list_for_each_entry(d, &nh_devs, node) {
		if (d->gated_dev == dev)
			nh_gate_lost(d, dev);
	}
	mutex_unlock(&nh_devs_lock);
	return NOTIFY_DONE;
}

static struct notifier_block nh_netdev_nb = {
	.notifier_call = nh_netdev_event,
};

static void nh_debugfs_init(void)
{
	nh_debugfs = debugfs_create_dir("nichandover", NULL);
	debugfs_create_u32("fail_quiesce", 0600, nh_debugfs, &nh_fault_quiesce);
	debugfs_create_u32("fail_attach", 0600, nh_debugfs, &nh_fault_attach);
	debugfs_create_u32("quiesce_stall_ms", 0600, nh_debugfs,
			   &nh_quiesce_stall_ms);
	debugfs_create_u32("attach_stall_ms", 0600, nh_debugfs,
			   &nh_attach_stall_ms);
}

static int __init nh_init(void)
{
	int err;

	err = nh_commit_init();
	if (err)
		return err;
	err = register_netdevice_notifier(&nh_netdev_nb);
	if (err)
		goto err_commit;
	err = nh_genl_register();
	if (err) {
		unregister_netdevice_notifier(&nh_netdev_nb);
		goto err_commit;
	}
	nh_debugfs_init();
	pr_info("loaded: generic netlink family \"%s\"\n", NH_GENL_NAME);
	return 0;

err_commit:
	nh_commit_exit();
	return err;
}

/*
 * Unload is possible only when no device is held (each quiesced or
 * released device holds a module reference) and no contract driver is
 * loaded (it links against the exported symbols), so nothing here touches
 * a device.
 */
static void __exit nh_exit(void)
{
	struct nh_dev *d, *tmp;

	debugfs_remove_recursive(nh_debugfs);
	nh_genl_unregister();
	unregister_netdevice_notifier(&nh_netdev_nb);
	nh_commit_exit();
	list_for_each_entry_safe(d, tmp, &nh_devs, node) {
		cancel_work_sync(&d->abandon_work);
		list_del(&d->node);
		kfree(d->rings);
		kfree(d->saved_override);
		mutex_destroy(&d->lock);
		kfree(d);
	}
}

module_init(nh_init);
module_exit(nh_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nichandover: hand a running NIC over between OS nodes");
MODULE_AUTHOR("nichandover");
