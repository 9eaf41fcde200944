// SPDX-License-Identifier: GPL-2.0
/*
 * The "nichandover" generic netlink family.
 *
 * The family is parallel_ops and netnsok: a request locks only the device
 * it names (its per-device mutex, held across the operation's waits), so
 * requests on different devices run side by side and STATUS or LIST, which
 * take no device lock, answer while another request waits.  Devices are
 * looked up in the requester's network namespace.
 *
 * Every request needs CAP_NET_ADMIN; a raw REROUTE also CAP_SYS_RAWIO, and
 * is refused under kernel lockdown.  A request that changes a device
 * carries the handover epoch: it is checked before anything is changed and
 * becomes the device's highest epoch only when the change is made.  An
 * optional operation id fences late requests of the same epoch likewise.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/kernel.h>
#include <linux/rtnetlink.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/netlink.h>
#include <net/sch_generic.h>
#include <net/sock.h>

#include "nh_internal.h"

#define NH_DEFAULT_TIMEOUT_MS 2000
#define NH_MAX_REQ_VECTORS 2048
/* Events per EVENTS reply: well inside one NLMSG_GOODSIZE message. */
#define NH_EVENTS_PER_REPLY 16

static const struct nla_policy nh_msi_policy[NH_MSI_ATTR_MAX + 1] = {
	[NH_MSI_ATTR_INDEX] = NLA_POLICY_MAX(NLA_U32, NH_MAX_REQ_VECTORS - 1),
	[NH_MSI_ATTR_ADDRESS] = { .type = NLA_U64 },
	[NH_MSI_ATTR_DATA] = { .type = NLA_U32 },
	[NH_MSI_ATTR_CPU] = { .type = NLA_U32 },
};

static const struct nla_policy nh_ring_policy[NH_RING_ATTR_MAX + 1] = {
	[NH_RING_ATTR_QUEUE] = { .type = NLA_U32 },
	[NH_RING_ATTR_RX_NEXT_TO_CLEAN] = { .type = NLA_U32 },
	[NH_RING_ATTR_RX_NEXT_TO_USE] = { .type = NLA_U32 },
	[NH_RING_ATTR_TX_NEXT_TO_CLEAN] = { .type = NLA_U32 },
	[NH_RING_ATTR_TX_NEXT_TO_USE] = { .type = NLA_U32 },
};

/* NLA_POLICY_RANGE holds only s16 bounds. */
static struct netlink_range_validation nh_timeout_range = {
	.min = 1,
	.max = NH_TIMEOUT_MS_MAX,
};

/* U64_MAX would leave no higher epoch to reclaim the device with. */
static struct netlink_range_validation nh_epoch_range = {
	.min = 0,
	.max = U64_MAX - 1,
};

/* Reply-only attributes are absent: a request carrying one is refused. */
static const struct nla_policy nh_policy[NH_ATTR_MAX + 1] = {
	[NH_ATTR_PCI_DEV] = { .type = NLA_NUL_STRING, .len = NH_PCI_DEV_LEN - 1 },
	[NH_ATTR_EPOCH] = NLA_POLICY_FULL_RANGE(NLA_U64, &nh_epoch_range),
	[NH_ATTR_OP_ID] = { .type = NLA_U64 },
	[NH_ATTR_TIMEOUT_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &nh_timeout_range),
	[NH_ATTR_REROUTE_MODE] = NLA_POLICY_RANGE(NLA_U32, NH_REROUTE_AFFINITY,
						  NH_REROUTE_RAW),
	[NH_ATTR_TARGET_CPU] = { .type = NLA_U32 },
	[NH_ATTR_MSI_LIST] = NLA_POLICY_NESTED_ARRAY(nh_msi_policy),
	[NH_ATTR_RINGS] = NLA_POLICY_NESTED_ARRAY(nh_ring_policy),
	[NH_ATTR_VECTOR_COUNT] = NLA_POLICY_RANGE(NLA_U32, 1, NH_MAX_REQ_VECTORS),
	[NH_ATTR_RECORD_EXPECTED] = { .type = NLA_U64 },
	[NH_ATTR_RECORD_DESIRED] = { .type = NLA_U64 },
	[NH_ATTR_EVENT_SEQ] = { .type = NLA_U64 },
};

static struct genl_family nh_family;

/* Everything one request works on. */
struct nh_req {
	struct sk_buff *skb;
	struct genl_info *info;
	struct netlink_ext_ack *extack;
	struct net *net;
	u8 cmd;
	struct nh_dev *d;
	struct pci_dev *pdev;
	struct sk_buff *reply;
	u64 epoch;
	u64 op_id;
	u32 stage;
};

/* Under @d->lock, or under RCU for the lockless STATUS and LIST. */
static bool nh_contract(const struct nh_dev *d)
{
	return d && READ_ONCE(d->hd);
}

/* "dddd:bb:dd.f" -> the PCI function, referenced; NULL if not one. */
static struct pci_dev *nh_pci_lookup(const char *id)
{
	unsigned int domain, bus, slot, fn;
	char tail;

	if (sscanf(id, "%x:%x:%x.%x%c", &domain, &bus, &slot, &fn, &tail) != 4 ||
	    domain > 0xffff || bus > 0xff || slot > 0x1f || fn > 7)
		return NULL;
	return pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
}

/*
 * Whether the requester's namespace may name a cold-mode function: its
 * interface must be there; a function with no interface at all (unbound,
 * or released) belongs to the initial namespace.
 */
static bool nh_cold_visible(struct pci_dev *pdev, struct net *net)
{
	struct net *other;
	bool anywhere = false;

	rcu_read_lock();
	if (nh_netdev_of(pdev, net)) {
		rcu_read_unlock();
		return true;
	}
	for_each_net_rcu(other) {
		if (nh_netdev_of(pdev, other)) {
			anywhere = true;
			break;
		}
	}
	rcu_read_unlock();
	return !anywhere && net_eq(net, &init_net);
}

static bool nh_contract_visible(struct nh_dev *d, struct net *net)
{
	struct nh_handover_dev *hd;
	bool visible;

	rcu_read_lock();
	hd = READ_ONCE(d->hd);
	visible = hd && net_eq(dev_net(hd->netdev), net);
	rcu_read_unlock();
	return visible;
}

/*
 * The device a request names: a registered contract device, else a PCI
 * function (cold mode), visible from the requester's namespace.  @create
 * adds a registry entry for a PCI function seen for the first time.
 */
static int nh_req_resolve(struct nh_req *r, bool create)
{
	struct nlattr *attr = r->info->attrs[NH_ATTR_PCI_DEV];
	const char *id;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_PCI_DEV))
		return -EINVAL;
	id = nla_data(attr);
	r->d = nh_dev_find(id, false);
	if (nh_contract(r->d)) {
		if (!nh_contract_visible(r->d, r->net))
			goto not_here;
		return 0;
	}
	r->pdev = nh_pci_lookup(id);
	if (!r->pdev) {
		NL_SET_ERR_MSG_ATTR(r->extack, attr,
				    "no registered device and no PCI function by that name (dddd:bb:dd.f)");
		return -ENODEV;
	}
	if (!nh_cold_visible(r->pdev, r->net))
		goto not_here;
	if (!r->d && create) {
		r->d = nh_dev_find(id, true);
		if (!r->d)
			return -ENOMEM;
	}
	return 0;

not_here:
	NL_SET_ERR_MSG_ATTR(r->extack, attr, "device is not in this network namespace");
	return -ENODEV;
}

static int nh_put_u64(struct sk_buff *skb, int type, u64 value)
{
	return nla_put_u64_64bit(skb, type, value, NH_ATTR_PAD);
}

/* Skbs waiting in the qdiscs of @dev's TX queues (behind a closed gate). */
static u64 nh_qdisc_backlog(struct net_device *dev)
{
	unsigned int i;
	u64 sum = 0;

	/* Every queue has a qdisc (noop_qdisc at least) while registered. */
	for (i = 0; i < dev->num_tx_queues; i++)
		sum += qdisc_qlen_sum(rcu_dereference(netdev_get_tx_queue(dev, i)->qdisc));
	return sum;
}

/* The driver has struct nh_commit_ops; takes no device lock. */
static bool nh_kernel_commit(struct nh_dev *d)
{
	struct nh_handover_dev *hd;
	bool yes;

	rcu_read_lock();
	hd = READ_ONCE(d->hd);
	yes = hd && hd->commit_ops;
	rcu_read_unlock();
	return yes;
}

static int nh_put_netdev(struct sk_buff *skb, struct nh_dev *d,
			 struct pci_dev *pdev, struct net *net)
{
	struct nh_handover_dev *hd;
	struct net_device *dev;
	int err = 0;

	rcu_read_lock();
	hd = d ? READ_ONCE(d->hd) : NULL;
	if (hd)
		dev = net_eq(dev_net(hd->netdev), net) ? hd->netdev : NULL;
	else
		dev = pdev ? nh_netdev_of(pdev, net) : NULL;
	if (dev && (nla_put_string(skb, NH_ATTR_IFNAME, dev->name) ||
		    nla_put_u32(skb, NH_ATTR_IFINDEX, dev->ifindex) ||
		    nh_put_u64(skb, NH_ATTR_BQL_INFLIGHT, nh_bql_inflight(dev)) ||
		    nh_put_u64(skb, NH_ATTR_HELD_XMITS, nh_qdisc_backlog(dev))))
		err = -EMSGSIZE;
	rcu_read_unlock();
	return err;
}

/* What every reply and every LIST entry carries; takes no device lock. */
static int nh_put_status(struct sk_buff *skb, struct nh_dev *d,
			 struct pci_dev *pdev, struct net *net)
{
	bool contract = nh_contract(d);
	u32 state = d ? READ_ONCE(d->state) : NH_STATE_RUNNING;

	if (nla_put_u32(skb, NH_ATTR_STATE, state) ||
	    nh_put_u64(skb, NH_ATTR_EPOCH, d ? READ_ONCE(d->max_epoch) : 0) ||
	    nh_put_u64(skb, NH_ATTR_OP_ID, d ? READ_ONCE(d->max_op_id) : 0) ||
	    nla_put_u32(skb, NH_ATTR_HANDOVER_MODE, contract ?
			NH_HANDOVER_MODE_CONTRACT : NH_HANDOVER_MODE_COLD))
		return -EMSGSIZE;
	if (nh_put_netdev(skb, d, pdev, net))
		return -EMSGSIZE;
	if (pdev && nla_put_u32(skb, NH_ATTR_MSI_MODE, nh_msi_mode(pdev)))
		return -EMSGSIZE;
	if (contract && nla_put_u32(skb, NH_ATTR_QUEUE_COUNT, d->queue_count))
		return -EMSGSIZE;
	if (contract &&
	    (nla_put_u8(skb, NH_ATTR_KERNEL_COMMIT, nh_kernel_commit(d)) ||
	     nh_put_u64(skb, NH_ATTR_ARMED_EPOCH, READ_ONCE(d->armed_epoch)) ||
	     nh_put_u64(skb, NH_ATTR_DOORBELLS_IGNORED,
			atomic64_read(&d->doorbells_ignored))))
		return -EMSGSIZE;
	if (d && (nh_put_u64(skb, NH_ATTR_DRAINED_TX_BYTES, d->drained_tx_bytes) ||
		  nh_put_u64(skb, NH_ATTR_QUIESCE_NS, d->quiesce_ns)))
		return -EMSGSIZE;
	return 0;
}

static int nh_put_msi_list(struct sk_buff *skb, int type,
			   const struct nh_msi_entry *e, int n)
{
	struct nlattr *list, *item;
	int i;

	list = nla_nest_start(skb, type);
	if (!list)
		return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		item = nla_nest_start(skb, i + 1);
		if (!item ||
		    nla_put_u32(skb, NH_MSI_ATTR_INDEX, e[i].index) ||
		    nla_put_u64_64bit(skb, NH_MSI_ATTR_ADDRESS, e[i].address,
				      NH_MSI_ATTR_PAD) ||
		    nla_put_u32(skb, NH_MSI_ATTR_DATA, e[i].data) ||
		    nla_put_u8(skb, NH_MSI_ATTR_MASKED, e[i].masked) ||
		    nla_put_u32(skb, NH_MSI_ATTR_IRQ, e[i].irq) ||
		    nla_put_u32(skb, NH_MSI_ATTR_CPU, e[i].cpu))
			return -EMSGSIZE;
		nla_nest_end(skb, item);
	}
	nla_nest_end(skb, list);
	return 0;
}

static int nh_put_rings(struct sk_buff *skb, const struct nh_ring_state *rs,
			unsigned int n)
{
	struct nlattr *list, *item;
	unsigned int i;

	list = nla_nest_start(skb, NH_ATTR_RINGS);
	if (!list)
		return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		item = nla_nest_start(skb, i + 1);
		if (!item ||
		    nla_put_u32(skb, NH_RING_ATTR_QUEUE, rs[i].queue) ||
		    nla_put_u32(skb, NH_RING_ATTR_RX_NEXT_TO_CLEAN, rs[i].rx_next_to_clean) ||
		    nla_put_u32(skb, NH_RING_ATTR_RX_NEXT_TO_USE, rs[i].rx_next_to_use) ||
		    nla_put_u32(skb, NH_RING_ATTR_TX_NEXT_TO_CLEAN, rs[i].tx_next_to_clean) ||
		    nla_put_u32(skb, NH_RING_ATTR_TX_NEXT_TO_USE, rs[i].tx_next_to_use))
			return -EMSGSIZE;
		nla_nest_end(skb, item);
	}
	nla_nest_end(skb, list);
	return 0;
}

/* The device's messages (window or PCI function) into the reply. */
static int nh_put_msi(struct nh_req *r, int type)
{
	struct nh_handover_dev *hd = nh_contract(r->d) ? r->d->hd : NULL;
	struct nh_msi_entry *e;
	int n, room;

	if (hd && hd->msix_table)
		room = hd->msix_entries;
	else if (r->pdev)
		room = nh_msi_count(r->pdev);
	else
		room = 0;
	e = kcalloc(max(room, 1), sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	if (hd && hd->msix_table)
		n = nh_window_read(hd, e, room);
	else if (r->pdev)
		n = nh_msi_read(r->pdev, e, room);
	else
		n = 0;
	if (n >= 0)
		n = nh_put_msi_list(r->reply, type, e, n);
	kfree(e);
	return n;
}

/* NH_ATTR_MSI_LIST of a REROUTE request; kcalloc'ed into *@out. */
static int nh_parse_msi_list(struct nh_req *r, struct nh_msi_entry **out,
			     bool raw)
{
	struct nlattr *list = r->info->attrs[NH_ATTR_MSI_LIST];
	struct nlattr *tb[NH_MSI_ATTR_MAX + 1];
	struct nh_msi_entry *e;
	struct nlattr *item;
	int rem, n = 0, err;

	nla_for_each_nested(item, list, rem)
		n++;
	if (!n || n > NH_MAX_REQ_VECTORS) {
		NL_SET_ERR_MSG_ATTR(r->extack, list, "expected 1 to 2048 vectors");
		return -EINVAL;
	}
	e = kcalloc(n, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	n = 0;
	nla_for_each_nested(item, list, rem) {
		err = nla_parse_nested(tb, NH_MSI_ATTR_MAX, item, nh_msi_policy,
				       r->extack);
		if (err)
			goto err;
		err = -EINVAL;
		if (NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_MSI_ATTR_INDEX))
			goto err;
		if (raw && (NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_MSI_ATTR_ADDRESS) ||
			    NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_MSI_ATTR_DATA)))
			goto err;
		if (!raw && NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_MSI_ATTR_CPU))
			goto err;
		e[n].index = nla_get_u32(tb[NH_MSI_ATTR_INDEX]);
		if (raw) {
			e[n].address = nla_get_u64(tb[NH_MSI_ATTR_ADDRESS]);
			e[n].data = nla_get_u32(tb[NH_MSI_ATTR_DATA]);
		} else {
			e[n].cpu = nla_get_u32(tb[NH_MSI_ATTR_CPU]);
		}
		n++;
	}
	*out = e;
	return n;
err:
	kfree(e);
	return err;
}

/* NH_ATTR_RINGS of an ATTACH request; kcalloc'ed into *@out. */
static int nh_parse_rings(struct nh_req *r, struct nh_ring_state **out)
{
	struct nlattr *list = r->info->attrs[NH_ATTR_RINGS];
	struct nlattr *tb[NH_RING_ATTR_MAX + 1];
	struct nh_ring_state *rs;
	struct nlattr *item;
	int rem, n = 0, err;

	*out = NULL;
	if (!list)
		return 0;
	nla_for_each_nested(item, list, rem)
		n++;
	if (n > max(r->d->queue_count, 1U)) {
		NL_SET_ERR_MSG_ATTR(r->extack, list, "more rings than the device has queues");
		return -EINVAL;
	}
	rs = kcalloc(max(n, 1), sizeof(*rs), GFP_KERNEL);
	if (!rs)
		return -ENOMEM;
	n = 0;
	nla_for_each_nested(item, list, rem) {
		err = nla_parse_nested(tb, NH_RING_ATTR_MAX, item, nh_ring_policy,
				       r->extack);
		if (err)
			goto err;
		err = -EINVAL;
		if (NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_RING_ATTR_QUEUE) ||
		    NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_RING_ATTR_RX_NEXT_TO_CLEAN) ||
		    NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_RING_ATTR_RX_NEXT_TO_USE) ||
		    NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_RING_ATTR_TX_NEXT_TO_CLEAN) ||
		    NL_REQ_ATTR_CHECK(r->extack, item, tb, NH_RING_ATTR_TX_NEXT_TO_USE))
			goto err;
		rs[n].queue = nla_get_u32(tb[NH_RING_ATTR_QUEUE]);
		rs[n].rx_next_to_clean = nla_get_u32(tb[NH_RING_ATTR_RX_NEXT_TO_CLEAN]);
		rs[n].rx_next_to_use = nla_get_u32(tb[NH_RING_ATTR_RX_NEXT_TO_USE]);
		rs[n].tx_next_to_clean = nla_get_u32(tb[NH_RING_ATTR_TX_NEXT_TO_CLEAN]);
		rs[n].tx_next_to_use = nla_get_u32(tb[NH_RING_ATTR_TX_NEXT_TO_USE]);
		n++;
	}
	*out = rs;
	return n;
err:
	kfree(rs);
	return err;
}

/* A raw MSI-X write (REROUTE raw, HANDOFF): who may. */
static int nh_check_raw_caps(struct nh_req *r)
{
	int err;

	if (!netlink_capable(r->skb, CAP_SYS_RAWIO)) {
		NL_SET_ERR_MSG_MOD(r->extack, "a raw MSI-X write needs CAP_SYS_RAWIO");
		return -EPERM;
	}
	err = security_locked_down(LOCKDOWN_PCI_ACCESS);
	if (err) {
		NL_SET_ERR_MSG_MOD(r->extack, "a raw MSI-X write is refused under kernel lockdown");
		return err;
	}
	return 0;
}

/* Raw REROUTE: who may, and on what. */
static int nh_check_raw_allowed(struct nh_req *r)
{
	struct nh_dev *d = r->d;
	int err;

	err = nh_check_raw_caps(r);
	if (err)
		return err;
	if (d->state != NH_STATE_QUIESCED && d->state != NH_STATE_RELEASED) {
		NL_SET_ERR_MSG_MOD(r->extack,
				   "raw REROUTE needs a device quiesced or released here");
		return -EBUSY;
	}
	/*
	 * The epoch is not lower than the device's highest (checked
	 * already).  A quiesced device is still this node's: a higher epoch
	 * takes its hold over, as the daemon that rolls a handover back
	 * after a restart does with its abort epoch.  A released one
	 * belongs to another node: only the epoch it was released at.
	 */
	if (d->state == NH_STATE_RELEASED && r->epoch != d->max_epoch) {
		NL_SET_ERR_MSG_MOD(r->extack, "released at another epoch");
		return -ESTALE;
	}
	return 0;
}

static int nh_do_reroute(struct nh_req *r)
{
	struct nh_handover_dev *hd = nh_contract(r->d) ? r->d->hd : NULL;
	struct nh_msi_entry *req = NULL;
	bool raw;
	u32 cpu;
	int n, i, err;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_REROUTE_MODE))
		return -EINVAL;
	raw = nla_get_u32(r->info->attrs[NH_ATTR_REROUTE_MODE]) == NH_REROUTE_RAW;
	if (raw) {
		err = nh_check_raw_allowed(r);
		if (err)
			return err;
		if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_MSI_LIST))
			return -EINVAL;
	} else if (hd) {
		NL_SET_ERR_MSG_MOD(r->extack, "contract devices move their interrupts in RAW mode");
		return -EOPNOTSUPP;
	}
	if (!(hd && hd->msix_table) &&
	    (!r->pdev || nh_msi_mode(r->pdev) == NH_MSI_MODE_NONE)) {
		NL_SET_ERR_MSG_MOD(r->extack, "function has neither MSI nor MSI-X enabled");
		return -EOPNOTSUPP;
	}
	if (r->info->attrs[NH_ATTR_MSI_LIST]) {
		n = nh_parse_msi_list(r, &req, raw);
	} else {
		/* Affinity without a list: every vector to TARGET_CPU. */
		if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_TARGET_CPU))
			return -EINVAL;
		cpu = nla_get_u32(r->info->attrs[NH_ATTR_TARGET_CPU]);
		n = nh_msi_count(r->pdev);
		req = kcalloc(max(n, 1), sizeof(*req), GFP_KERNEL);
		if (!req)
			return -ENOMEM;
		n = nh_msi_read(r->pdev, req, n);
		for (i = 0; i < n; i++)
			req[i].cpu = cpu;
	}
	if (n < 0)
		return n;
	err = raw ? nh_msi_check_raw(req, n, r->extack) : 0;
	/* The reply holds what was there before anything is written. */
	if (!err)
		err = nh_put_msi(r, NH_ATTR_MSI_PREVIOUS);
	if (!err && raw && hd && hd->msix_table)
		err = nh_window_reroute(hd, req, n, r->extack);
	else if (!err && raw)
		err = nh_msi_reroute_raw(r->pdev, req, n, r->extack);
	else if (!err)
		err = nh_msi_reroute_affinity(r->pdev, req, n, r->extack);
	if (!err)
		err = nh_put_msi(r, NH_ATTR_MSI_LIST);
	kfree(req);
	return err;
}

static int nh_do_reserve(struct nh_req *r)
{
	struct nh_handover_dev *hd = r->d->hd;
	struct nh_msi_entry *e;
	struct nh_msi_msg *msgs;
	u32 i, n;
	int err;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_VECTOR_COUNT))
		return -EINVAL;
	n = nla_get_u32(r->info->attrs[NH_ATTR_VECTOR_COUNT]);
	if (!hd->ops->reserve_vectors) {
		NL_SET_ERR_MSG_MOD(r->extack, "the driver does not reserve vectors");
		return -EOPNOTSUPP;
	}
	if (r->d->state == NH_STATE_RUNNING || r->d->state == NH_STATE_QUIESCED) {
		NL_SET_ERR_MSG_MOD(r->extack,
				   "the device runs on this node: nothing to reserve for");
		return -EBUSY;
	}
	if (r->d->reserved_vectors) {
		/* A retried RESERVE (its daemon restarted): replace it. */
		hd->ops->unreserve_vectors(hd);
		r->d->reserved_vectors = 0;
		nh_commit_disarm(r->d);
	}
	if (hd->msix_table && n > hd->msix_entries) {
		NL_SET_ERR_MSG_MOD(r->extack, "more vectors than the device's MSI-X entries");
		return -EINVAL;
	}
	msgs = kcalloc(n, sizeof(*msgs), GFP_KERNEL);
	e = kcalloc(n, sizeof(*e), GFP_KERNEL);
	err = -ENOMEM;
	if (!msgs || !e)
		goto out;
	err = hd->ops->reserve_vectors(hd, msgs, n, r->extack);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		e[i].index = i;
		e[i].address = msgs[i].address;
		e[i].data = msgs[i].data;
		e[i].cpu = U32_MAX;
	}
	err = nh_put_msi_list(r->reply, NH_ATTR_MSI_LIST, e, n);
	if (err) {
		hd->ops->unreserve_vectors(hd);
	} else {
		r->d->reserved_vectors = n;
		r->d->reserved_epoch = r->epoch;
	}
out:
	kfree(msgs);
	kfree(e);
	return err;
}

/* A request the device's state does not allow: -EBUSY and why. */
#define nh_refuse_state(r, msg) ({			\
	NL_SET_ERR_MSG_MOD((r)->extack, msg);		\
	-EBUSY;						\
})

static int nh_do_attach(struct nh_req *r)
{
	struct nh_dev *d = r->d;
	struct nh_ring_state *rings;
	int n, err;

	if (d->state == NH_STATE_QUIESCED)
		return nh_refuse_state(r,
				       "quiesced on this node: RESUME, or RECLAIM after a release");
	if (d->state == NH_STATE_GATED)
		return nh_refuse_state(r, "a quiesce is in progress");
	if (d->state == NH_STATE_RELEASED && r->epoch <= d->released_epoch) {
		NL_SET_ERR_MSG_MOD(r->extack,
				   "released: ATTACH needs the new owner's higher epoch");
		return -ESTALE;
	}
	if (!nh_contract(d))
		return nh_cold_attach(d, r->pdev, r->extack);
	if (d->state == NH_STATE_RUNNING) {
		/* A retried ATTACH (its daemon restarted) finds it done. */
		if (r->epoch == d->max_epoch)
			return 0;
		return nh_refuse_state(r, "the device runs on this node already");
	}
	n = nh_parse_rings(r, &rings);
	if (n < 0)
		return n;
	err = nh_contract_attach(d, rings, n, r->extack);
	kfree(rings);
	return err;
}

static int nh_do_reclaim(struct nh_req *r)
{
	struct nh_dev *d = r->d;

	if (d->state != NH_STATE_RELEASED && d->state != NH_STATE_STANDBY)
		return nh_refuse_state(r, "only a released or standby device can be reclaimed");
	if (r->epoch <= d->max_epoch) {
		NL_SET_ERR_MSG_MOD(r->extack, "RECLAIM needs an epoch higher than the device's");
		return -ESTALE;
	}
	if (nh_contract(d))
		nh_hold(d, d->hd->dev);
	else
		nh_hold(d, &r->pdev->dev);
	d->reclaimed = true;
	nh_set_state(d, NH_STATE_QUIESCED);
	return 0;
}

/* Contract devices whose driver has struct nh_commit_ops. */
static int nh_check_kernel_commit(struct nh_req *r)
{
	if (!nh_contract(r->d) || !r->d->hd->commit_ops) {
		NL_SET_ERR_MSG_MOD(r->extack,
				   "the device's driver has no kernel commit path (struct nh_commit_ops)");
		return -EOPNOTSUPP;
	}
	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_RECORD_EXPECTED) ||
	    GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_RECORD_DESIRED))
		return -EINVAL;
	return 0;
}

static int nh_do_arm(struct nh_req *r)
{
	int err = nh_check_kernel_commit(r);

	if (err)
		return err;
	return nh_commit_arm(r->d, r->epoch, r->op_id,
			     nla_get_u64(r->info->attrs[NH_ATTR_RECORD_EXPECTED]),
			     nla_get_u64(r->info->attrs[NH_ATTR_RECORD_DESIRED]),
			     r->extack);
}

/*
 * The source's one call: the driver's quiesce, the raw MSI-X rewrite of the
 * window (mask, write, read back), then nh_commit_handoff().  @r->stage says
 * how far it got, also on an error.
 */
static int nh_do_handoff(struct nh_req *r)
{
	struct nh_dev *d = r->d;
	unsigned int timeout_ms = NH_DEFAULT_TIMEOUT_MS;
	struct nh_msi_entry *req = NULL;
	u64 expected, desired, found = 0;
	int n, err;

	err = nh_check_kernel_commit(r);
	if (err)
		return err;
	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_MSI_LIST))
		return -EINVAL;
	err = nh_check_raw_caps(r);
	if (err)
		return err;
	if (d->state != NH_STATE_RUNNING &&
	    (d->state != NH_STATE_QUIESCED || d->reclaimed))
		return nh_refuse_state(r, "the device is not running on this node");
	expected = nla_get_u64(r->info->attrs[NH_ATTR_RECORD_EXPECTED]);
	desired = nla_get_u64(r->info->attrs[NH_ATTR_RECORD_DESIRED]);
	if (expected == desired) {
		NL_SET_ERR_MSG_MOD(r->extack, "HANDOFF needs two different record words");
		return -EINVAL;
	}
	if (r->info->attrs[NH_ATTR_TIMEOUT_MS])
		timeout_ms = nla_get_u32(r->info->attrs[NH_ATTR_TIMEOUT_MS]);
	n = nh_parse_msi_list(r, &req, true);
	if (n < 0)
		return n;
	err = nh_msi_check_raw(req, n, r->extack);
	if (err)
		goto out;
	/* A retried HANDOFF finds the device quiesced by the first. */
	if (d->state == NH_STATE_RUNNING) {
		err = nh_contract_quiesce(d, timeout_ms, r->extack);
		if (err)
			goto out;
	}
	r->stage = NH_HANDOFF_QUIESCED;
	err = nh_put_rings(r->reply, d->rings, d->n_rings);
	err = err ?: nh_put_msi(r, NH_ATTR_MSI_PREVIOUS);
	err = err ?: nh_window_reroute(d->hd, req, n, r->extack);
	if (err)
		goto out;
	r->stage = NH_HANDOFF_REROUTED;
	err = nh_commit_handoff(d, r->epoch, r->op_id, expected, desired, &found,
				&r->stage, r->extack);
	if (!err && (nh_put_u64(r->reply, NH_ATTR_RECORD, found) ||
		     nla_put_u32(r->reply, NH_ATTR_HANDOFF_STAGE, r->stage)))
		err = -EMSGSIZE;
out:
	kfree(req);
	return err;
}

static int nh_do_change(struct nh_req *r)
{
	struct nh_dev *d = r->d;
	bool contract = nh_contract(d);
	unsigned int timeout_ms = NH_DEFAULT_TIMEOUT_MS;

	switch (r->cmd) {
	case NH_CMD_QUIESCE:
		if (d->state == NH_STATE_QUIESCED && !d->reclaimed)
			return 0;
		if (d->state != NH_STATE_RUNNING)
			return nh_refuse_state(r, "the device is not running on this node");
		if (r->info->attrs[NH_ATTR_TIMEOUT_MS])
			timeout_ms = nla_get_u32(r->info->attrs[NH_ATTR_TIMEOUT_MS]);
		if (contract)
			return nh_contract_quiesce(d, timeout_ms, r->extack);
		return nh_cold_quiesce(d, r->pdev, r->net, timeout_ms, r->extack);
	case NH_CMD_RESUME:
		if (d->state == NH_STATE_RUNNING)
			return 0;
		if (d->state != NH_STATE_QUIESCED)
			return nh_refuse_state(r, "not quiesced here");
		if (contract)
			return nh_contract_resume(d, r->extack);
		return nh_cold_resume(d, r->pdev, r->extack);
	case NH_CMD_RELEASE:
		/* A HANDOFF whose CAS won released it already. */
		if (d->state == NH_STATE_RELEASED && r->epoch == d->released_epoch)
			return 0;
		if (d->state != NH_STATE_QUIESCED)
			return nh_refuse_state(r, "not quiesced: QUIESCE before RELEASE");
		if (d->reclaimed) {
			/* Never started again: the driver is still released. */
			d->reclaimed = false;
			nh_set_state(d, NH_STATE_RELEASED);
			return 0;
		}
		if (contract)
			return nh_contract_release(d, r->extack);
		return nh_cold_release(d, r->pdev, r->extack);
	case NH_CMD_ATTACH:
		if (contract)
			nh_commit_disarm(d);
		return nh_do_attach(r);
	case NH_CMD_RECLAIM:
		if (contract)
			nh_commit_disarm(d);
		return nh_do_reclaim(r);
	case NH_CMD_ARM:
		return nh_do_arm(r);
	case NH_CMD_HANDOFF:
		return nh_do_handoff(r);
	case NH_CMD_REROUTE:
		return nh_do_reroute(r);
	case NH_CMD_RESERVE:
	case NH_CMD_UNRESERVE:
		if (!contract) {
			NL_SET_ERR_MSG_MOD(r->extack, "only contract devices reserve vectors");
			return -EOPNOTSUPP;
		}
		if (r->cmd == NH_CMD_RESERVE)
			return nh_do_reserve(r);
		if (d->reserved_vectors)
			d->hd->ops->unreserve_vectors(d->hd);
		d->reserved_vectors = 0;
		nh_commit_disarm(d);
		return 0;
	}
	return -EOPNOTSUPP;
}

/* Requests that may go without an epoch. */
static bool nh_epoch_optional(u8 cmd)
{
	return cmd == NH_CMD_RESERVE || cmd == NH_CMD_UNRESERVE;
}

/* A request that changes the device, under the device's lock. */
static int nh_change(struct nh_req *r)
{
	struct nlattr *epoch = r->info->attrs[NH_ATTR_EPOCH];
	struct nlattr *op_id = r->info->attrs[NH_ATTR_OP_ID];
	struct nh_dev *d = r->d;
	int err;

	if (!nh_epoch_optional(r->cmd) &&
	    GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_EPOCH))
		return -EINVAL;
	err = mutex_lock_killable(&d->lock);
	if (err)
		return err;
	r->epoch = epoch ? nla_get_u64(epoch) : d->max_epoch;
	r->op_id = op_id ? nla_get_u64(op_id) : 0;
	if (r->epoch < d->max_epoch) {
		NL_SET_ERR_MSG_ATTR(r->extack, epoch,
				    "epoch is lower than the highest seen for this device");
		err = -ESTALE;
		goto out;
	}
	/*
	 * A late call of the current epoch: an older daemon instance's (or
	 * a timed-out attempt's) operation landing after newer ones.
	 */
	if (op_id && r->epoch == d->max_epoch && r->op_id < d->max_op_id) {
		NL_SET_ERR_MSG_ATTR(r->extack, op_id,
				    "operation id is lower than the highest accepted at this epoch (a late call)");
		err = -ESTALE;
		goto out;
	}
	/* The contract device may have been unregistered meanwhile. */
	if (!d->hd && !r->pdev) {
		NL_SET_ERR_MSG_MOD(r->extack, "the device's driver unregistered it");
		err = -ENODEV;
		goto out;
	}
	err = nh_do_change(r);
	/* A HANDOFF that failed half-way changed the device: fence it. */
	if (err && r->stage == NH_HANDOFF_NOTHING)
		goto out;
	/* A request without an operation id leaves it at its epoch's. */
	if (r->epoch > d->max_epoch || op_id)
		WRITE_ONCE(d->max_op_id, r->op_id);
	WRITE_ONCE(d->max_epoch, r->epoch);
	if (r->cmd == NH_CMD_RELEASE)
		d->released_epoch = r->epoch;
	if (err)
		goto out;
	if (r->cmd == NH_CMD_QUIESCE && d->hd && d->state == NH_STATE_QUIESCED)
		err = nh_put_rings(r->reply, d->rings, d->n_rings);
	if (d->hd)
		nh_refresh_config(d);
out:
	mutex_unlock(&d->lock);
	return err;
}

static int nh_read_msi(struct nh_req *r)
{
	int err;

	if (!nh_contract(r->d))
		return nh_put_msi(r, NH_ATTR_MSI_LIST);
	/* The window belongs to the registration: keep it registered. */
	err = mutex_lock_killable(&r->d->lock);
	if (err)
		return err;
	err = r->d->hd ? nh_put_msi(r, NH_ATTR_MSI_LIST) : -ENODEV;
	mutex_unlock(&r->d->lock);
	return err;
}

static int nh_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct nh_req r = {
		.skb = skb,
		.info = info,
		.extack = info->extack,
		.net = genl_info_net(info),
		.cmd = info->genlhdr->cmd,
	};
	bool reads = r.cmd == NH_CMD_STATUS || r.cmd == NH_CMD_READ_MSI;
	void *hdr;
	int err;

	/* The reply exists before anything changes. */
	r.reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!r.reply)
		return -ENOMEM;
	hdr = genlmsg_put_reply(r.reply, info, &nh_family, 0, r.cmd);
	if (!hdr) {
		nlmsg_free(r.reply);
		return -EMSGSIZE;
	}
	err = nh_req_resolve(&r, !reads);
	if (!err && r.cmd == NH_CMD_READ_MSI)
		err = nh_read_msi(&r);
	else if (!err && !reads)
		err = nh_change(&r);
	if (!err)
		err = nh_put_status(r.reply, r.d, r.pdev, r.net);
	pci_dev_put(r.pdev);
	if (err) {
		nlmsg_free(r.reply);
		return err;
	}
	genlmsg_end(r.reply, hdr);
	return genlmsg_reply(r.reply, info);
}

static int nh_put_event(struct sk_buff *skb, const struct nh_event *e, int i)
{
	struct nlattr *item = nla_nest_start(skb, i + 1);

	if (!item ||
	    nla_put_u64_64bit(skb, NH_EVENT_ATTR_SEQ, e->seq, NH_EVENT_ATTR_PAD) ||
	    nla_put_u32(skb, NH_EVENT_ATTR_KIND, e->kind) ||
	    nla_put_string(skb, NH_EVENT_ATTR_PCI_DEV, e->id) ||
	    nla_put_u64_64bit(skb, NH_EVENT_ATTR_EPOCH, e->epoch, NH_EVENT_ATTR_PAD) ||
	    nla_put_u64_64bit(skb, NH_EVENT_ATTR_RECORD, e->record, NH_EVENT_ATTR_PAD) ||
	    nla_put_string(skb, NH_EVENT_ATTR_REASON, e->reason))
		return -EMSGSIZE;
	nla_nest_end(skb, item);
	return 0;
}

/*
 * EVENTS: the log after NH_ATTR_EVENT_SEQ, waiting up to NH_ATTR_TIMEOUT_MS
 * for one (no lock held while waiting).  Events of devices not visible from
 * the requester's namespace are left out; the sequence still counts them.
 */
static int nh_events_doit(struct sk_buff *skb, struct genl_info *info)
{
	struct net *net = genl_info_net(info);
	u64 after = 0, newest;
	struct sk_buff *reply;
	struct nh_event *ev;
	struct nlattr *list;
	struct nh_dev *d;
	void *hdr;
	int n, i, shown = 0, err = -EMSGSIZE;
	long left;

	if (info->attrs[NH_ATTR_EVENT_SEQ])
		after = nla_get_u64(info->attrs[NH_ATTR_EVENT_SEQ]);
	if (info->attrs[NH_ATTR_TIMEOUT_MS]) {
		left = nh_events_wait(after, nla_get_u32(info->attrs[NH_ATTR_TIMEOUT_MS]));
		if (left < 0)
			return left;
	}
	ev = kcalloc(NH_EVENTS_PER_REPLY, sizeof(*ev), GFP_KERNEL);
	reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!ev || !reply) {
		err = -ENOMEM;
		goto err;
	}
	n = nh_events_copy(after, ev, NH_EVENTS_PER_REPLY);
	newest = n ? ev[n - 1].seq : nh_events_newest();
	hdr = genlmsg_put_reply(reply, info, &nh_family, 0, NH_CMD_EVENTS);
	if (!hdr || nh_put_u64(reply, NH_ATTR_EVENT_SEQ, newest))
		goto err;
	list = nla_nest_start(reply, NH_ATTR_EVENTS);
	if (!list)
		goto err;
	for (i = 0; i < n; i++) {
		d = nh_dev_find(ev[i].id, false);
		if (!d || !nh_contract_visible(d, net))
			continue;
		if (nh_put_event(reply, &ev[i], shown++))
			goto err;
	}
	nla_nest_end(reply, list);
	genlmsg_end(reply, hdr);
	kfree(ev);
	return genlmsg_reply(reply, info);
err:
	nlmsg_free(reply);
	kfree(ev);
	return err;
}

static int nh_put_list_entry(struct sk_buff *skb, struct netlink_callback *cb,
			     struct nh_dev *d, struct pci_dev *pdev,
			     struct net *net)
{
	void *hdr;

	hdr = genlmsg_put(skb, NETLINK_CB(cb->skb).portid, cb->nlh->nlmsg_seq,
			  &nh_family, NLM_F_MULTI, NH_CMD_LIST);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_string(skb, NH_ATTR_PCI_DEV, d->id) ||
	    nh_put_status(skb, d, pdev, net))
		goto cancel;
	if (nh_contract(d)) {
		if ((d->config_len &&
		     (nla_put(skb, NH_ATTR_CONFIG, d->config_len, d->config) ||
		      nla_put_u16(skb, NH_ATTR_VENDOR_ID, d->vendor) ||
		      nla_put_u16(skb, NH_ATTR_DEVICE_ID, d->device))) ||
		    nla_put_string(skb, NH_ATTR_DRIVER, d->driver))
			goto cancel;
	} else if (pdev) {
		if (nla_put_u16(skb, NH_ATTR_VENDOR_ID, pdev->vendor) ||
		    nla_put_u16(skb, NH_ATTR_DEVICE_ID, pdev->device))
			goto cancel;
	}
	genlmsg_end(skb, hdr);
	return 0;
cancel:
	genlmsg_cancel(skb, hdr);
	return -EMSGSIZE;
}

/*
 * LIST: every registry entry visible from the requester's namespace.
 * cb->args[0] is the next registry position (entries are never removed
 * while the module is loaded, so positions are stable).
 */
static int nh_list_dumpit(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct net *net = sock_net(skb->sk);
	struct nh_dev *d;
	int err;

	while ((d = nh_dev_at(cb->args[0]))) {
		struct pci_dev *pdev = nh_contract(d) ? NULL : nh_pci_lookup(d->id);
		bool visible = nh_contract(d) ? nh_contract_visible(d, net) :
				pdev && nh_cold_visible(pdev, net);

		err = visible ? nh_put_list_entry(skb, cb, d, pdev, net) : 0;
		pci_dev_put(pdev);
		if (err)
			return skb->len ? skb->len : err;
		cb->args[0]++;
	}
	return skb->len;
}

static const struct genl_small_ops nh_ops[] = {
	{ .cmd = NH_CMD_QUIESCE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RESUME, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_ATTACH, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RELEASE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_READ_MSI, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_REROUTE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_STATUS, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_LIST, .dumpit = nh_list_dumpit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RESERVE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_UNRESERVE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RECLAIM, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_ARM, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_HANDOFF, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_EVENTS, .doit = nh_events_doit, .flags = GENL_ADMIN_PERM },
};

static struct genl_family nh_family __ro_after_init = {
	.name = NH_GENL_NAME,
	.version = NH_GENL_VERSION,
	.maxattr = NH_ATTR_MAX,
	.policy = nh_policy,
	.module = THIS_MODULE,
	.small_ops = nh_ops,
	.n_small_ops = ARRAY_SIZE(nh_ops),
	.netnsok = true,
	.parallel_ops = true,
	/* New family: reserved header bytes are checked for every command. */
	.resv_start_op = 0,
};

int nh_genl_register(void)
{
	return genl_register_family(&nh_family);
}

void nh_genl_unregister(void)
{
	genl_unregister_family(&nh_family);
}
