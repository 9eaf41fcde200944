// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel commit path of the simulated NIC (struct nh_commit_ops of
 * hook/kmod/nh_handover.h): the ownership record word and the handoff slot
 * beside it in the machine's memory (BAR2, shared by every node's kernel
 * and the simulated ones), and a doorbell to another guest's kernel.
 *
 * The doorbell is the ivshmem Doorbell register written with the target
 * guest's peer id (its node slot) and NH_SIM_IVSHMEM_VEC_CONTROL, the
 * vector reserved for it.  Guests drive NIC 0 only, so the record itself is
 * the doorbell's mailbox: the HANDOFF word names the target and carries the
 * epoch, which the target's interrupt handler reads and hands to the hook.
 *
 * These ops are called under the hook's device lock, not sn->lock: they
 * touch only the record and the slot, never the driver's role or engines.
 * Every access to the record and the slot is a plain load, store or
 * locked cmpxchg on the shared memory, as the machine's own C++ writers do
 * (sim/machine.cc); the layout is sim/guest_abi.h's.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/io.h>
#include <linux/jiffies.h>
#include <linux/sched.h>

#include "nh_simnic.h"

/* A seqlock writer stuck this long died mid-way (sim/machine.cc: 1 s). */
#define NH_SIMNIC_SLOT_TAKEOVER_MS 1000

static struct nh_simnic *nh_simnic_of(struct nh_handover_dev *hd)
{
	return hd->priv;
}

/*
 * The machine's memory is ordinary RAM on the host (a shared file mapping);
 * a locked cmpxchg on it is atomic against every other guest and process
 * that maps it.  The __force cast drops the __iomem marker for that one
 * instruction.
 */
static u64 nh_simnic_cmpxchg64(void __iomem *addr, u64 old, u64 new)
{
	return cmpxchg((u64 __force *)addr, old, new);
}

static u32 nh_simnic_cmpxchg32(void __iomem *addr, u32 old, u32 new)
{
	return cmpxchg((u32 __force *)addr, old, new);
}

static int nh_simnic_cas_record(struct nh_handover_dev *hd, u64 expected,
				u64 desired, u64 *found)
{
	struct nh_simnic *sn = nh_simnic_of(hd);

	*found = nh_simnic_cmpxchg64(sn->nic.ownership, expected, desired);
	return 0;
}

/*
 * Take the slot's sequence lock (even -> odd), as the machine's writers do;
 * a writer that stays on the same odd value for the takeover time is dead
 * and its value is skipped.  Returns the odd value held.
 */
static u32 nh_simnic_slot_lock(struct nh_simnic *sn)
{
	void __iomem *seqp = sn->nic.handoff + NH_SIM_HANDOFF_SEQ;
	unsigned long stuck_since = jiffies;
	u32 seq = readl(seqp), stuck = seq;

	for (;;) {
		if (!(seq & 1)) {
			if (nh_simnic_cmpxchg32(seqp, seq, seq + 1) == seq)
				return seq + 1;
		} else if (seq != stuck) {
			stuck = seq;
			stuck_since = jiffies;
		} else if (time_after(jiffies, stuck_since +
				      msecs_to_jiffies(NH_SIMNIC_SLOT_TAKEOVER_MS)) &&
			   nh_simnic_cmpxchg32(seqp, seq, seq + 2) == seq) {
			return seq + 2;
		}
		cond_resched();
		seq = readl(seqp);
	}
}

static int nh_simnic_write_rings(struct nh_handover_dev *hd, u64 epoch,
				 u64 op_id, const struct nh_ring_state *rings,
				 unsigned int n)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	void __iomem *h = sn->nic.handoff;
	u64 stored_epoch, stored_op_id;
	u32 held;
	int err = 0;

	/* Guests attach to one-queue machines only. */
	if (n != 1)
		return -EINVAL;
	held = nh_simnic_slot_lock(sn);
	/* The machine's fence: a lower (epoch, op_id) never replaces rings. */
	if (readl(h + NH_SIM_HANDOFF_COUNT)) {
		stored_epoch = readq(h + NH_SIM_HANDOFF_EPOCH);
		stored_op_id = readq(h + NH_SIM_HANDOFF_OP_ID);
		if (epoch < stored_epoch ||
		    (epoch == stored_epoch && op_id < stored_op_id))
			err = -ESTALE;
	}
	if (!err) {
		writeq(epoch, h + NH_SIM_HANDOFF_EPOCH);
		writeq(op_id, h + NH_SIM_HANDOFF_OP_ID);
		writel(1, h + NH_SIM_HANDOFF_COUNT);
		writel(rings[0].rx_next_to_clean, h + NH_SIM_HANDOFF_RX_NTC);
		writel(rings[0].rx_next_to_use, h + NH_SIM_HANDOFF_RX_NTU);
		writel(rings[0].tx_next_to_clean, h + NH_SIM_HANDOFF_TX_NTC);
		writel(rings[0].tx_next_to_use, h + NH_SIM_HANDOFF_TX_NTU);
	}
	/* The words above are visible before the sequence is even again. */
	wmb();
	writel(held + 1, h + NH_SIM_HANDOFF_SEQ);
	return err;
}

static int nh_simnic_read_rings(struct nh_handover_dev *hd, u64 epoch,
				struct nh_ring_state *rings, unsigned int max)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	void __iomem *h = sn->nic.handoff;
	unsigned long deadline = jiffies +
				 msecs_to_jiffies(NH_SIMNIC_SLOT_TAKEOVER_MS);
	struct nh_ring_state r = { .queue = 0 };
	u64 stored_epoch;
	u32 before, count;

	if (!max)
		return -EINVAL;
	for (;;) {
		before = readl(h + NH_SIM_HANDOFF_SEQ);
		if (!(before & 1)) {
			rmb(); /* the words after the sequence */
			stored_epoch = readq(h + NH_SIM_HANDOFF_EPOCH);
			count = readl(h + NH_SIM_HANDOFF_COUNT);
			r.rx_next_to_clean = readl(h + NH_SIM_HANDOFF_RX_NTC);
			r.rx_next_to_use = readl(h + NH_SIM_HANDOFF_RX_NTU);
			r.tx_next_to_clean = readl(h + NH_SIM_HANDOFF_TX_NTC);
			r.tx_next_to_use = readl(h + NH_SIM_HANDOFF_TX_NTU);
			rmb(); /* before the sequence is read again */
			if (readl(h + NH_SIM_HANDOFF_SEQ) == before)
				break;
		}
		/* A writer is mid-way: it finishes in nanoseconds, or died. */
		if (time_after(jiffies, deadline))
			return -EBUSY;
		cond_resched();
	}
	if (!count || stored_epoch != epoch)
		return -ENOENT;
	rings[0] = r;
	return 1;
}

static int nh_simnic_ring_doorbell(struct nh_handover_dev *hd, u64 handoff)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	u32 target = NH_SIM_OWN_TARGET(handoff);
	void __iomem *slot;

	if (target >= sn->node_count)
		return -EINVAL;
	slot = sn->shm + sn->nodes_offset + (u64)target * sn->node_stride;
	/* A simulated kernel has no ivshmem vector: the daemons commit. */
	if (readl(slot + NH_SIM_NODE_KIND_OFFSET) != NH_SIM_NODE_GUEST)
		return -EOPNOTSUPP;
	writel(readl(slot + NH_SIM_NODE_PEER_ID_OFFSET) << 16 |
	       NH_SIM_IVSHMEM_VEC_CONTROL,
	       sn->bar0 + NH_SIM_IVSHMEM_REG_DOORBELL);
	return 0;
}

/**
 * nh_simnic_doorbell() - the control vector rang: another kernel's doorbell
 * @sn: the driver
 *
 * Context: hard IRQ.  Reads the record (the mailbox) and leaves the rest to
 * the hook's work.
 */
void nh_simnic_doorbell(struct nh_simnic *sn)
{
	nh_handover_doorbell(&sn->hd, NH_SIM_OWN_EPOCH(readq(sn->nic.ownership)));
}

const struct nh_commit_ops nh_simnic_commit_ops = {
	.cas_record = nh_simnic_cas_record,
	.write_rings = nh_simnic_write_rings,
	.read_rings = nh_simnic_read_rings,
	.ring_doorbell = nh_simnic_ring_doorbell,
};
