// SPDX-License-Identifier: GPL-2.0
/*
 * The handover contract (hook/kmod/nh_handover.h)
 * for the simulated NIC.
 *
 * The hook module decides when; these ops decide how this driver stops and
 * starts its own engines.  Every op runs under sn->lock, which ndo_open and
 * ndo_stop take too, so the driver's own paths never restart engines while
 * the NIC is quiesced or on standby.  No op takes rtnl_lock.  The ownership
 * record is written by the daemon and, on the kernel commit path, by the
 * hook through nh_simnic_commit.c: never by these ops.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <net/sch_generic.h>

#include "nh_simnic.h"

/*
 * The quiesce rule for frames the local stack produces.  NAPI stops first,
 * so nothing new reaches the stack; then the driver keeps transmitting until
 * the qdisc is empty and nothing was transmitted for tx_quiet_ms (counted
 * from the NAPI stop or the last transmit, whichever is later) and over the
 * last NH_SIMNIC_TX_QUIET_SLEEPS sleeps of the quiesce, bounded by
 * NH_SIMNIC_TX_QUIET_MAX_MS and half the request's timeout.  A reply to a
 * frame NAPI delivered just before the stop (an echo, a TCP ACK) therefore
 * leaves from this node if it is produced within tx_quiet_ms of the
 * previous one; anything later waits in the qdisc and leaves when this node
 * runs the NIC again.
 */
unsigned int nh_simnic_tx_quiet_ms = 20;
module_param_named(tx_quiet_ms, nh_simnic_tx_quiet_ms, uint, 0644);
MODULE_PARM_DESC(tx_quiet_ms,
		 "quiesce: transmit until the stack was quiet this long (ms, default 20)");

#define NH_SIMNIC_TX_QUIET_MAX_MS 500
/* Sleeps of the quiesce without a transmit, on top of tx_quiet_ms. */
#define NH_SIMNIC_TX_QUIET_SLEEPS 4

static struct nh_simnic *nh_simnic_of(struct nh_handover_dev *hd)
{
	return hd->priv;
}

static void nh_simnic_gate_tx(struct nh_simnic *sn)
{
	/* Cleared before netif_tx_disable takes the queue lock: see clean_tx. */
	WRITE_ONCE(sn->tx_open, false);
	netif_tx_disable(sn->netdev);
}

static void nh_simnic_clean_tx_process(struct nh_simnic *sn)
{
	local_bh_disable();
	nh_simnic_clean_tx(sn);
	local_bh_enable();
}

/*
 * TX keeps running (NAPI off) until the local stack has been quiet.  Quiet
 * means time *and* sleeps: a vCPU stalled by its host makes time pass
 * without giving the stack a chance to run, while every sleep here lets a
 * runnable sender (the reply's producer) have the CPU.
 */
static void nh_simnic_wait_tx_quiet(struct nh_simnic *sn,
				    unsigned int timeout_ms)
{
	unsigned long quiet = msecs_to_jiffies(READ_ONCE(nh_simnic_tx_quiet_ms));
	unsigned long stopped = jiffies;
	unsigned long bound = stopped +
		msecs_to_jiffies(min(timeout_ms / 2, NH_SIMNIC_TX_QUIET_MAX_MS));
	unsigned long seen = READ_ONCE(sn->last_xmit);
	unsigned int sleeps = 0;

	for (;;) {
		unsigned long last = READ_ONCE(sn->last_xmit);

		nh_simnic_clean_tx_process(sn);
		if (last != seen) {
			seen = last;
			sleeps = 0;
		}
		if (time_before(last, stopped))
			last = stopped;
		if (qdisc_all_tx_empty(sn->netdev) &&
		    sleeps >= NH_SIMNIC_TX_QUIET_SLEEPS &&
		    time_after_eq(jiffies, last + quiet))
			return;
		if (time_after(jiffies, bound)) {
			atomic64_inc(&sn->tx_quiet_waits);
			return;
		}
		usleep_range(500, 1000);
		sleeps++;
	}
}

/* Every TX descriptor handed to the device completed, or -ETIMEDOUT. */
static int nh_simnic_wait_tx_done(struct nh_simnic *sn, unsigned long deadline)
{
	for (;;) {
		nh_simnic_clean_tx_process(sn);
		if (READ_ONCE(sn->tx_ntc) == READ_ONCE(sn->tx_ntu))
			return 0;
		if (time_after(jiffies, deadline))
			return -ETIMEDOUT;
		usleep_range(100, 200);
	}
}

static int nh_simnic_quiesce(struct nh_handover_dev *hd,
			     struct nh_ring_state *rings,
			     unsigned int max_rings, unsigned int timeout_ms,
			     struct netlink_ext_ack *extack)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	bool engines;
	int err;

	if (!max_rings) {
		NL_SET_ERR_MSG_MOD(extack, "no room for the ring state");
		return -EINVAL;
	}
	mutex_lock(&sn->lock);
	if (sn->role != NH_SIMNIC_RUNNING) {
		NL_SET_ERR_MSG_MOD(extack, "this node does not run the NIC");
		err = -EINVAL;
		goto out;
	}
	engines = sn->engines_on;
	if (engines) {
		/*
		 * RX delivery stops first; the device keeps filling the
		 * ring, which holds the blackout for the next owner.
		 */
		napi_disable(&sn->napi);
		nh_simnic_wait_tx_quiet(sn, timeout_ms);
		nh_simnic_gate_tx(sn);
	}
	err = nh_simnic_wait_tx_done(sn, deadline);
	if (err) {
		netdev_err(sn->netdev,
			   "quiesce: TX descriptors %u..%u not completed in %u ms\n",
			   sn->tx_ntc, sn->tx_ntu, timeout_ms);
		NL_SET_ERR_MSG_MOD(extack, "TX completions did not finish in time");
		atomic64_inc(&sn->quiesce_timeouts);
		if (engines) {
			/* Undo: the NIC runs as before. */
			netif_tx_lock_bh(sn->netdev);
			WRITE_ONCE(sn->tx_open, true);
			netif_tx_unlock_bh(sn->netdev);
			netif_tx_wake_all_queues(sn->netdev);
			napi_enable(&sn->napi);
			local_bh_disable();
			napi_schedule(&sn->napi);
			local_bh_enable();
		}
		goto out;
	}
	if (engines)
		nh_simnic_set_causes(sn, false);
	nh_simnic_set_running_node(sn, false);
	sn->role = NH_SIMNIC_QUIESCED;
	atomic64_inc(&sn->quiesces);
	rings[0].queue = 0;
	rings[0].rx_next_to_clean = sn->rx_ntc;
	rings[0].rx_next_to_use = sn->rx_ntu;
	rings[0].tx_next_to_clean = sn->tx_ntc;
	rings[0].tx_next_to_use = sn->tx_ntu;
	err = 1;
out:
	mutex_unlock(&sn->lock);
	return err;
}

static int nh_simnic_resume(struct nh_handover_dev *hd,
			    struct netlink_ext_ack *extack)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	int err = 0;

	mutex_lock(&sn->lock);
	if (sn->role == NH_SIMNIC_STANDBY) {
		NL_SET_ERR_MSG_MOD(extack, "released: only attach makes this node run the NIC");
		err = -EINVAL;
	} else if (sn->role == NH_SIMNIC_QUIESCED) {
		sn->role = NH_SIMNIC_RUNNING;
		nh_simnic_set_running_node(sn, true);
		if (sn->up)
			nh_simnic_start_engines(sn);
	}
	mutex_unlock(&sn->lock);
	return err;
}

static void nh_simnic_release(struct nh_handover_dev *hd)
{
	struct nh_simnic *sn = nh_simnic_of(hd);

	mutex_lock(&sn->lock);
	if (sn->role != NH_SIMNIC_STANDBY) {
		if (sn->engines_on) {
			/*
			 * Released without a quiesce: stop using the NIC,
			 * but leave its registers to the new owner.
			 */
			netdev_warn(sn->netdev, "released while running\n");
			nh_simnic_gate_tx(sn);
			napi_disable(&sn->napi);
			WRITE_ONCE(sn->engines_on, false);
		}
		sn->role = NH_SIMNIC_STANDBY;
		atomic64_inc(&sn->handovers_out);
	}
	nh_simnic_uninstall_vectors(sn);
	sn->reserved = 0;
	mutex_unlock(&sn->lock);
}

/* Does @r describe where this NIC's rings are now? */
static int nh_simnic_check_rings(struct nh_simnic *sn,
				 const struct nh_ring_state *r,
				 struct netlink_ext_ack *extack)
{
	u32 mask = sn->nic.ring_size - 1;
	u32 rdt = nh_simnic_reg_read(sn, NH_SIM_REG_RDT) & mask;
	u32 rdh = nh_simnic_reg_read(sn, NH_SIM_REG_RDH) & mask;
	u32 tdt = nh_simnic_reg_read(sn, NH_SIM_REG_TDT) & mask;
	u32 tdh = nh_simnic_reg_read(sn, NH_SIM_REG_TDH) & mask;

	if (r->queue != 0 || r->rx_next_to_clean > mask ||
	    r->rx_next_to_use > mask || r->tx_next_to_clean > mask ||
	    r->tx_next_to_use > mask) {
		NL_SET_ERR_MSG_MOD(extack, "ring state outside the NIC's rings");
		return -EINVAL;
	}
	/*
	 * The tails are the source's last writes; the heads must lie in the
	 * spans the source had given the device.
	 */
	if (r->rx_next_to_use != rdt || r->tx_next_to_use != tdt ||
	    ((rdh - r->rx_next_to_clean) & mask) >
	    ((r->rx_next_to_use - r->rx_next_to_clean) & mask) ||
	    ((tdh - r->tx_next_to_clean) & mask) >
	    ((r->tx_next_to_use - r->tx_next_to_clean) & mask)) {
		netdev_err(sn->netdev,
			   "ring state rx %u/%u tx %u/%u does not match the NIC (RDH %u RDT %u TDH %u TDT %u)\n",
			   r->rx_next_to_clean, r->rx_next_to_use,
			   r->tx_next_to_clean, r->tx_next_to_use,
			   rdh, rdt, tdh, tdt);
		NL_SET_ERR_MSG_MOD(extack, "ring state does not match the NIC's registers");
		return -EINVAL;
	}
	return 0;
}

static int nh_simnic_attach(struct nh_handover_dev *hd,
			    const struct nh_ring_state *rings,
			    unsigned int n_rings, struct netlink_ext_ack *extack)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	bool initialized;
	int err = 0;

	mutex_lock(&sn->lock);
	if (sn->role == NH_SIMNIC_RUNNING)
		goto out;	/* a retried attach */
	if (sn->role == NH_SIMNIC_QUIESCED) {
		NL_SET_ERR_MSG_MOD(extack, "quiesced here: resume or release it first");
		err = -EBUSY;
		goto out;
	}
	if (n_rings > 1) {
		NL_SET_ERR_MSG_MOD(extack, "the NIC has one queue pair");
		err = -EINVAL;
		goto out;
	}
	initialized = readl(sn->nic.initialized);
	if (!initialized && n_rings) {
		NL_SET_ERR_MSG_MOD(extack, "ring state given for a NIC never set up");
		err = -EINVAL;
		goto out;
	}
	if (n_rings) {
		err = nh_simnic_check_rings(sn, &rings[0], extack);
		if (err)
			goto out;
	}
	if (!initialized) {
		/* First owner: sets the rings and the MSI-X table up. */
		err = nh_simnic_setup_nic(sn);
		if (err) {
			NL_SET_ERR_MSG_MOD(extack, "setting the NIC up failed");
			nh_simnic_uninstall_vectors(sn);
			goto out;
		}
	} else {
		nh_simnic_install_vectors(sn, sn->nic.msix_entries);
		err = nh_simnic_check_routing(sn);
		if (err) {
			NL_SET_ERR_MSG_MOD(extack,
					   "the NIC's MSI-X table does not route to this node");
			if (!sn->reserved)
				nh_simnic_uninstall_vectors(sn);
			goto out;
		}
		if (n_rings) {
			sn->rx_ntc = rings[0].rx_next_to_clean;
			sn->rx_ntu = rings[0].rx_next_to_use;
			sn->tx_ntc = rings[0].tx_next_to_clean;
			sn->tx_ntu = rings[0].tx_next_to_use;
			memset(sn->tx_bql_len, 0,
			       sn->nic.ring_size * sizeof(*sn->tx_bql_len));
			netdev_tx_reset_queue(netdev_get_tx_queue(sn->netdev, 0));
		} else {
			/* No ring state (its source is gone): the registers. */
			nh_simnic_adopt_rings(sn);
		}
	}
	sn->reserved = 0;
	sn->role = NH_SIMNIC_RUNNING;
	nh_simnic_set_running_node(sn, true);
	atomic64_inc(&sn->handovers_in);
	if (sn->up)
		nh_simnic_start_engines(sn);
out:
	mutex_unlock(&sn->lock);
	return err;
}

static int nh_simnic_reserve_vectors(struct nh_handover_dev *hd,
				     struct nh_msi_msg *msgs, unsigned int n,
				     struct netlink_ext_ack *extack)
{
	struct nh_simnic *sn = nh_simnic_of(hd);
	unsigned int i;
	int err = 0;

	mutex_lock(&sn->lock);
	if (sn->role != NH_SIMNIC_STANDBY) {
		NL_SET_ERR_MSG_MOD(extack, "this node owns the NIC already");
		err = -EBUSY;
	} else if (!n || n > sn->nic.msix_entries) {
		NL_SET_ERR_MSG_MOD(extack, "more vectors than the NIC has MSI-X entries");
		err = -ENOSPC;
	} else {
		nh_simnic_install_vectors(sn, n);
		sn->reserved = n;
		for (i = 0; i < n; i++)
			msgs[i] = nh_simnic_msg(sn, i);
	}
	mutex_unlock(&sn->lock);
	return err;
}

static void nh_simnic_unreserve_vectors(struct nh_handover_dev *hd)
{
	struct nh_simnic *sn = nh_simnic_of(hd);

	mutex_lock(&sn->lock);
	/* Vectors in use by a running NIC stay installed. */
	if (sn->reserved && sn->role == NH_SIMNIC_STANDBY)
		nh_simnic_uninstall_vectors(sn);
	sn->reserved = 0;
	mutex_unlock(&sn->lock);
}

static int nh_simnic_read_config(struct nh_handover_dev *hd,
				 unsigned int offset, void *buf,
				 unsigned int len)
{
	struct nh_simnic *sn = nh_simnic_of(hd);

	if (offset > 4096 || len > 4096 - offset)
		return -EINVAL;
	memcpy_fromio(buf, sn->nic.config + offset, len);
	return len;
}

const struct nh_handover_ops nh_simnic_handover_ops = {
	.quiesce = nh_simnic_quiesce,
	.resume = nh_simnic_resume,
	.release = nh_simnic_release,
	.attach = nh_simnic_attach,
	.reserve_vectors = nh_simnic_reserve_vectors,
	.unreserve_vectors = nh_simnic_unreserve_vectors,
	.read_config = nh_simnic_read_config,
};
