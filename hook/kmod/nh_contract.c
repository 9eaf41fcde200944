// SPDX-License-Identifier: GPL-2.0
/*
 * Hand over a device whose driver implements the handover
 * contract (nh_handover.h): live, with its ring state.
 *
 * The module only calls the driver's operations and keeps the bookkeeping
 * (state, holds, ring state, the MSI-X window's mask bits on attach); the
 * driver stops and starts its own engines.  Every function here runs with
 * the device's lock held and without rtnl_lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ktime.h>
#include <linux/slab.h>

#include "nh_internal.h"

/**
 * nh_contract_quiesce() - ask the driver to stop and report its rings
 * @d: the device (running)
 * @timeout_ms: the driver's deadline
 * @extack: where errors are explained
 *
 * Context: @d->lock held.
 * Return: 0 (state QUIESCED, @d->rings set), or a negative errno with the
 * device running as before.
 */
int nh_contract_quiesce(struct nh_dev *d, unsigned int timeout_ms,
			struct netlink_ext_ack *extack)
{
	struct nh_handover_dev *hd = d->hd;
	unsigned int max_rings = max(hd->queue_count, 1U);
	struct nh_ring_state *rings;
	ktime_t start;
	int n;

	lockdep_assert_held(&d->lock);
	rings = kcalloc(max_rings, sizeof(*rings), GFP_KERNEL);
	if (!rings)
		return -ENOMEM;
	if (nh_fault_hit(&nh_fault_quiesce, NH_FAULT_BEFORE)) {
		NL_SET_ERR_MSG_MOD(extack, "fault injected before the driver's quiesce");
		n = -EIO;
		goto err_free;
	}
	nh_hold(d, hd->dev);
	nh_set_state(d, NH_STATE_GATED);
	nh_stall();
	start = ktime_get();
	n = hd->ops->quiesce(hd, rings, max_rings, timeout_ms, extack);
	if (n < 0)
		goto err_unhold;
	if (n > max_rings) {
		/* A driver bug; the driver still owns a stopped device. */
		hd->ops->resume(hd, NULL);
		NL_SET_ERR_MSG_MOD(extack, "driver reported more rings than queues");
		n = -EPROTO;
		goto err_unhold;
	}
	if (nh_fault_hit(&nh_fault_quiesce, NH_FAULT_AFTER)) {
		hd->ops->resume(hd, NULL);
		NL_SET_ERR_MSG_MOD(extack, "fault injected after the driver's quiesce; resumed");
		n = -EIO;
		goto err_unhold;
	}
	d->quiesce_ns = ktime_to_ns(ktime_sub(ktime_get(), start));
	kfree(d->rings);
	d->rings = rings;
	d->n_rings = n;
	d->reclaimed = false;
	nh_set_state(d, NH_STATE_QUIESCED);
	return 0;

err_unhold:
	nh_unhold(d);
	nh_set_state(d, NH_STATE_RUNNING);
err_free:
	kfree(rings);
	return n;
}

/* Ops done: the device runs on this node. */
static void nh_contract_running(struct nh_dev *d)
{
	nh_unhold(d);
	d->reclaimed = false;
	nh_set_state(d, NH_STATE_RUNNING);
}

/**
 * nh_contract_resume() - undo a quiesce, or start a reclaimed device
 * @d: the device (quiesced)
 * @extack: where errors are explained
 *
 * A reclaimed device was released, so its driver is on standby: it is
 * attached with the rings this node saved when it quiesced it.
 *
 * Context: @d->lock held.
 * Return: 0, or the driver's negative errno (the device stays quiesced).
 */
int nh_contract_resume(struct nh_dev *d, struct netlink_ext_ack *extack)
{
	struct nh_handover_dev *hd = d->hd;
	int err;

	lockdep_assert_held(&d->lock);
	if (d->reclaimed)
		return nh_contract_attach(d, d->rings, d->n_rings, extack);
	err = hd->ops->resume(hd, extack);
	if (err)
		return err;
	nh_contract_running(d);
	return 0;
}

/**
 * nh_contract_release() - the device belongs to another node now
 * @d: the device (quiesced)
 * @extack: unused; the driver's release cannot fail
 *
 * The holds stay: the driver may not be unloaded (its remove would touch
 * a device another node drives) and this module may not be either.
 *
 * Context: @d->lock held.
 * Return: 0.
 */
int nh_contract_release(struct nh_dev *d, struct netlink_ext_ack *extack)
{
	lockdep_assert_held(&d->lock);
	d->hd->ops->release(d->hd);
	/* The driver's release forgets the vectors it ran on. */
	d->reserved_vectors = 0;
	d->reclaimed = false;
	nh_set_state(d, NH_STATE_RELEASED);
	return 0;
}

/**
 * nh_contract_attach() - run a device another node handed over
 * @d: the device (standby, released, or quiesced and reclaimed)
 * @rings: ring state from the source's QUIESCE
 * @n: entries in @rings
 * @extack: where errors are explained
 *
 * After the driver's attach, the MSI-X window's entries (the reserved
 * ones, or all) are unmasked, so that what the device signalled while
 * they were masked is delivered now.
 *
 * Context: @d->lock held.
 * Return: 0, or a negative errno with the device still on standby here.
 */
int nh_contract_attach(struct nh_dev *d, const struct nh_ring_state *rings,
		       unsigned int n, struct netlink_ext_ack *extack)
{
	struct nh_handover_dev *hd = d->hd;
	int err;

	lockdep_assert_held(&d->lock);
	if (n > max(hd->queue_count, 1U)) {
		NL_SET_ERR_MSG_MOD(extack, "more rings than the device has queues");
		return -EINVAL;
	}
	if (nh_fault_hit(&nh_fault_attach, NH_FAULT_BEFORE)) {
		NL_SET_ERR_MSG_MOD(extack, "fault injected before the driver's attach");
		return -EIO;
	}
	nh_stall_ms(&nh_attach_stall_ms);
	err = hd->ops->attach(hd, rings, n, extack);
	if (err)
		return err;
	if (nh_fault_hit(&nh_fault_attach, NH_FAULT_AFTER)) {
		hd->ops->release(hd);
		NL_SET_ERR_MSG_MOD(extack,
				   "fault injected after the driver's attach; released again");
		return -EIO;
	}
	if (hd->msix_table)
		nh_window_unmask(hd, d->reserved_vectors ?: hd->msix_entries);
	nh_contract_running(d);
	return 0;
}
