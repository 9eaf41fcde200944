// SPDX-License-Identifier: GPL-2.0
/*
 * nh_handover_reg.c - the registry of drivers that implement the handover
 * contract (nh_handover.h).
 *
 * Minimal: it records which devices registered, so a driver module can
 * depend on the hook today.  The netlink commands that drive the ops
 * (LIST, RESERVE, ATTACH, ...) build on this list.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "nh_handover.h"

/**
 * struct nh_handover_entry - one registered device
 * @list: in nh_handover_devs
 * @hd: the driver's registration
 */
struct nh_handover_entry {
	struct list_head list;
	struct nh_handover_dev *hd;
};

static LIST_HEAD(nh_handover_devs);
static DEFINE_MUTEX(nh_handover_lock);	/* protects nh_handover_devs */

static bool nh_handover_ops_complete(const struct nh_handover_ops *ops)
{
	return ops && ops->quiesce && ops->resume && ops->release &&
	       ops->attach && ops->reserve_vectors && ops->unreserve_vectors;
}

/**
 * nh_handover_register() - offer a device for live handover
 * @hd: the device; filled by the driver, owned by it until unregistered
 *
 * Context: process context; the netdev is registered.
 * Return: 0, -EINVAL for an incomplete @hd, -EEXIST if a device with the
 * same @hd->id is registered, -ENOMEM.
 */
int nh_handover_register(struct nh_handover_dev *hd)
{
	struct nh_handover_entry *e, *new;
	int err = 0;

	if (!hd || !hd->id || !hd->netdev || !hd->dev ||
	    !nh_handover_ops_complete(hd->ops) || !hd->queue_count ||
	    (hd->msix_table && !hd->msix_entries))
		return -EINVAL;
	new = kzalloc(sizeof(*new), GFP_KERNEL);
	if (!new)
		return -ENOMEM;
	new->hd = hd;
	mutex_lock(&nh_handover_lock);
	list_for_each_entry(e, &nh_handover_devs, list) {
		if (!strcmp(e->hd->id, hd->id)) {
			err = -EEXIST;
			break;
		}
	}
	if (!err) {
		list_add_tail(&new->list, &nh_handover_devs);
		pr_info("%s (%s) registered for handover, %s\n", hd->id,
			netdev_name(hd->netdev),
			hd->start == NH_HANDOVER_START_RUNNING ? "running" : "standby");
	}
	mutex_unlock(&nh_handover_lock);
	if (err)
		kfree(new);
	return err;
}
EXPORT_SYMBOL_GPL(nh_handover_register);

/**
 * nh_handover_unregister() - withdraw a device
 * @hd: a device registered with nh_handover_register()
 *
 * Context: process context.  No op of @hd runs once this returns.
 */
void nh_handover_unregister(struct nh_handover_dev *hd)
{
	struct nh_handover_entry *e;

	mutex_lock(&nh_handover_lock);
	list_for_each_entry(e, &nh_handover_devs, list) {
		if (e->hd == hd) {
			list_del(&e->list);
			kfree(e);
			break;
		}
	}
	mutex_unlock(&nh_handover_lock);
}
EXPORT_SYMBOL_GPL(nh_handover_unregister);
