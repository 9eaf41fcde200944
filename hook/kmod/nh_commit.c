// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel commit path (docs/hook.md, "Kernel commit path"): a handover
 * committed by the two nodes' kernels, with no daemon between the source's
 * last packet and the target's first.
 *
 * The target's daemon ARMs its kernel for one record word, HANDOFF(S, here,
 * e1), after it reserved its vectors.  The source's daemon makes one
 * HANDOFF request: the driver's quiesce, the raw MSI-X rewrite, the rings
 * beside the record, the CAS PREPARING -> HANDOFF and the target's doorbell
 * (struct nh_commit_ops of the driver).  The doorbell's interrupt handler
 * calls nh_handover_doorbell(), which only queues nh_commit_work(); the work
 * takes the device's lock, CASes HANDOFF -> ACTIVE(here, e1) if the record is
 * exactly the armed word, attaches through the driver (which unmasks and
 * opens its queues) and logs an event.
 *
 * The event log is a ring of the last NH_EVENT_LOG events, numbered from 1
 * per module load, read by the EVENTS request (which may wait for one).  A
 * log outlives a daemon that is not listening, unlike a multicast message.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/jiffies.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "nh_internal.h"

#define NH_EVENT_LOG 64

static struct nh_event nh_event_log[NH_EVENT_LOG];
static u64 nh_event_seq;		/* the newest event's; under the lock */
static DEFINE_SPINLOCK(nh_event_lock);	/* the log; never taken in IRQ */
static DECLARE_WAIT_QUEUE_HEAD(nh_event_wq);
static struct workqueue_struct *nh_commit_wq;

static void nh_event_emit(struct nh_dev *d, u32 kind, u64 epoch, u64 record,
			  const char *reason)
{
	struct nh_event *e;

	spin_lock(&nh_event_lock);
	nh_event_seq++;
	e = &nh_event_log[nh_event_seq % NH_EVENT_LOG];
	e->seq = nh_event_seq;
	e->kind = kind;
	strscpy(e->id, d->id, sizeof(e->id));
	e->epoch = epoch;
	e->record = record;
	strscpy(e->reason, reason, sizeof(e->reason));
	spin_unlock(&nh_event_lock);
	wake_up_all(&nh_event_wq);
	if (kind == NH_EVENT_COMMITTED)
		pr_info("%s: committed by the kernel at epoch %llu\n", d->id, epoch);
	else
		pr_info("%s: doorbell at epoch %llu did not commit: %s (record 0x%llx)\n",
			d->id, epoch, reason, record);
}

/**
 * nh_events_newest() - the newest event's sequence number
 *
 * Return: 0 when the log is empty.
 */
u64 nh_events_newest(void)
{
	u64 seq;

	spin_lock(&nh_event_lock);
	seq = nh_event_seq;
	spin_unlock(&nh_event_lock);
	return seq;
}

/**
 * nh_events_copy() - the events after a sequence number, oldest first
 * @after: the last one the reader has; above the newest (the reader saw
 *	an earlier load of the module) means all
 * @out: where they are copied
 * @max: room in @out
 *
 * Return: the number copied (the oldest ones still in the log).
 */
int nh_events_copy(u64 after, struct nh_event *out, unsigned int max)
{
	unsigned int n = 0;
	u64 seq, oldest;

	spin_lock(&nh_event_lock);
	if (after > nh_event_seq)
		after = 0;
	oldest = nh_event_seq >= NH_EVENT_LOG ? nh_event_seq - NH_EVENT_LOG + 1 : 1;
	for (seq = max(after + 1, oldest); seq <= nh_event_seq && n < max; seq++)
		out[n++] = nh_event_log[seq % NH_EVENT_LOG];
	spin_unlock(&nh_event_lock);
	return n;
}

/**
 * nh_events_wait() - wait for an event after @after
 * @after: as for nh_events_copy()
 * @timeout_ms: the longest wait
 *
 * Context: process context, no lock held.
 * Return: 0 on timeout, > 0 when there is one, -EINTR on a signal.
 */
long nh_events_wait(u64 after, unsigned int timeout_ms)
{
	long left;

	left = wait_event_interruptible_timeout(nh_event_wq,
						nh_events_newest() != after,
						msecs_to_jiffies(timeout_ms));
	return left < 0 ? -EINTR : left;
}

/**
 * nh_commit_arm() - arm the target's kernel for one HANDOFF word
 * @d: the device (standby or released here, vectors reserved at @epoch)
 * @epoch: the handover's epoch e1
 * @op_id: the target daemon's operation id, the fence its commit takes over
 * @handoff: the record word to take: HANDOFF(S, this node, @epoch)
 * @active: the word the commit writes: ACTIVE(this node, @epoch)
 * @extack: where errors are explained
 *
 * Context: @d->lock held.
 * Return: 0, or a negative errno with the arm unchanged.
 */
int nh_commit_arm(struct nh_dev *d, u64 epoch, u64 op_id, u64 handoff,
		  u64 active, struct netlink_ext_ack *extack)
{
	lockdep_assert_held(&d->lock);
	if (!d->hd->commit_ops) {
		NL_SET_ERR_MSG_MOD(extack,
				   "the driver has no kernel commit path (struct nh_commit_ops)");
		return -EOPNOTSUPP;
	}
	if (d->state != NH_STATE_STANDBY && d->state != NH_STATE_RELEASED) {
		NL_SET_ERR_MSG_MOD(extack,
				   "the device runs or is held on this node: nothing to arm for");
		return -EBUSY;
	}
	if (d->state == NH_STATE_RELEASED && epoch <= d->released_epoch) {
		NL_SET_ERR_MSG_MOD(extack,
				   "released: ARM needs the new owner's higher epoch");
		return -ESTALE;
	}
	if (!epoch || handoff == active) {
		NL_SET_ERR_MSG_MOD(extack,
				   "ARM needs an epoch and two different record words");
		return -EINVAL;
	}
	if (!d->reserved_vectors || d->reserved_epoch != epoch) {
		NL_SET_ERR_MSG_MOD(extack, "no RESERVE at this epoch: reserve the vectors first");
		return -EBUSY;
	}
	d->armed_op_id = op_id;
	d->armed_handoff = handoff;
	d->armed_active = active;
	WRITE_ONCE(d->armed_epoch, epoch);
	return 0;
}

/**
 * nh_commit_disarm() - forget the arm (a doorbell then commits nothing)
 * @d: the device
 *
 * Context: @d->lock held.
 */
void nh_commit_disarm(struct nh_dev *d)
{
	lockdep_assert_held(&d->lock);
	WRITE_ONCE(d->armed_epoch, 0);
}

/**
 * nh_commit_handoff() - the source's commit, after the quiesce and reroute
 * @d: the device (quiesced here, its vectors holding the target's messages)
 * @epoch: the handover's epoch
 * @op_id: the request's operation id (the rings' fence)
 * @expected: the record word PREPARING(S, T, @epoch)
 * @desired: the record word HANDOFF(S, T, @epoch)
 * @found: what the CAS found (@expected iff it won)
 * @stage: raised to each enum nh_handoff_stage reached
 * @extack: where errors are explained
 *
 * A lost CAS is not an error: the device stays quiesced here and the
 * caller reads *@found.  A won CAS is the commit point: the doorbell is
 * rung (a failure only leaves the commit to the daemons) and the driver
 * releases the device.
 *
 * Context: @d->lock held.
 * Return: 0, or a negative errno when the rings or the record could not be
 * written (the device stays quiesced and rerouted).
 */
int nh_commit_handoff(struct nh_dev *d, u64 epoch, u64 op_id, u64 expected,
		      u64 desired, u64 *found, u32 *stage,
		      struct netlink_ext_ack *extack)
{
	struct nh_handover_dev *hd = d->hd;
	const struct nh_commit_ops *ops = hd->commit_ops;
	int err;

	lockdep_assert_held(&d->lock);
	err = ops->write_rings(hd, epoch, op_id, d->rings, d->n_rings);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "the rings could not be written beside the record");
		return err;
	}
	*stage = NH_HANDOFF_RINGS_WRITTEN;
	err = ops->cas_record(hd, expected, desired, found);
	if (err) {
		NL_SET_ERR_MSG_MOD(extack, "the ownership record could not be reached");
		return err;
	}
	if (*found != expected)
		return 0;
	*stage = NH_HANDOFF_HANDED_OFF;
	err = ops->ring_doorbell(hd, desired);
	if (!err)
		*stage = NH_HANDOFF_DOORBELL_RUNG;
	else
		netdev_info(hd->netdev, "%s: target's doorbell not rung (%d): the daemons commit\n",
			    d->id, err);
	nh_contract_release(d, extack);
	d->released_epoch = epoch;
	return 0;
}

/* A doorbell that did not commit: counted and logged. */
static void nh_commit_ignored(struct nh_dev *d, u64 epoch, u64 record,
			      const char *why)
{
	atomic64_inc(&d->doorbells_ignored);
	nh_event_emit(d, NH_EVENT_NOT_COMMITTED, epoch, record, why);
}

/* The record is ours at @epoch: attach from the rings beside it. */
static void nh_commit_attach(struct nh_dev *d, u64 epoch)
{
	struct nh_handover_dev *hd = d->hd;
	unsigned int max_rings = max(hd->queue_count, 1U);
	struct nh_ring_state *rings;
	int n;

	rings = kcalloc(max_rings, sizeof(*rings), GFP_KERNEL);
	n = rings ? hd->commit_ops->read_rings(hd, epoch, rings, max_rings) : -ENOMEM;
	if (n < 0 || n > max_rings) {
		nh_event_emit(d, NH_EVENT_NOT_COMMITTED, epoch, d->armed_active,
			      "record taken, but no ring state beside it");
		goto out;
	}
	if (nh_contract_attach(d, rings, n, NULL)) {
		nh_event_emit(d, NH_EVENT_NOT_COMMITTED, epoch, d->armed_active,
			      "record taken, but the driver's attach failed");
		goto out;
	}
	nh_refresh_config(d);
	nh_event_emit(d, NH_EVENT_COMMITTED, epoch, d->armed_active, "");
out:
	kfree(rings);
}

/**
 * nh_commit_work() - what a doorbell does, in process context
 * @work: the device's commit_work
 *
 * Takes the record only if this node is armed for the epoch the doorbell
 * carried and the record is exactly the armed HANDOFF word (the CAS
 * decides).  Once the CAS won, the device is this node's at the armed
 * epoch whatever the attach does: the epoch fence moves to it and the arm
 * is spent.
 */
void nh_commit_work(struct work_struct *work)
{
	struct nh_dev *d = container_of(work, struct nh_dev, commit_work);
	u64 rung = atomic64_read(&d->doorbell_epoch);
	struct nh_handover_dev *hd;
	u64 epoch, found = 0;

	mutex_lock(&d->lock);
	hd = d->hd;
	if (!hd || !hd->commit_ops)
		goto out;
	epoch = d->armed_epoch;
	if (!epoch) {
		nh_commit_ignored(d, rung, 0, "not armed");
		goto out;
	}
	if (rung != epoch) {
		nh_commit_ignored(d, rung, 0, "doorbell for another epoch than the armed one");
		goto out;
	}
	if (hd->commit_ops->cas_record(hd, d->armed_handoff, d->armed_active, &found)) {
		nh_commit_ignored(d, epoch, 0, "the ownership record could not be reached");
		goto out;
	}
	if (found != d->armed_handoff) {
		nh_commit_ignored(d, epoch, found, "the record is not the armed HANDOFF");
		goto out;
	}
	WRITE_ONCE(d->max_epoch, epoch);
	WRITE_ONCE(d->max_op_id, d->armed_op_id);
	nh_commit_disarm(d);
	nh_commit_attach(d, epoch);
out:
	mutex_unlock(&d->lock);
}

/**
 * nh_handover_doorbell() - the driver's doorbell interrupt rang
 * @hd: the registered device
 * @epoch: the epoch the doorbell carries (its mailbox)
 *
 * Only queues the commit work: nothing is decided in interrupt context.
 * Doorbells that arrive while the work is pending coalesce; the newest
 * epoch wins.
 *
 * Context: any, including hard IRQ.
 */
void nh_handover_doorbell(struct nh_handover_dev *hd, u64 epoch)
{
	struct nh_dev *d = READ_ONCE(hd->hook_private);

	if (!d)
		return;
	atomic64_set(&d->doorbell_epoch, epoch);
	queue_work(nh_commit_wq, &d->commit_work);
}
EXPORT_SYMBOL_GPL(nh_handover_doorbell);

int nh_commit_init(void)
{
	/* High priority: the commit work is the target's side of a blackout. */
	nh_commit_wq = alloc_workqueue("nh_commit", WQ_HIGHPRI, 0);
	return nh_commit_wq ? 0 : -ENOMEM;
}

/* After the last contract driver is gone: runs what is still queued. */
void nh_commit_exit(void)
{
	destroy_workqueue(nh_commit_wq);
}
