// SPDX-License-Identifier: GPL-2.0
/*
 * nh_genl.c - the "nichandover" generic netlink family.
 *
 * One request at a time (the family is not parallel_ops), each under
 * rtnl_lock for its whole duration.  Every successful request is answered
 * with the function's status; errors are a negative errno plus an extack
 * message.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include "nh_internal.h"

#define NH_DEFAULT_TIMEOUT_MS 2000

static const struct nla_policy nh_msi_policy[NH_MSI_ATTR_MAX + 1] = {
	[NH_MSI_ATTR_INDEX] = NLA_POLICY_MAX(NLA_U32, 2047),
	[NH_MSI_ATTR_ADDRESS] = { .type = NLA_U64 },
	[NH_MSI_ATTR_DATA] = { .type = NLA_U32 },
	[NH_MSI_ATTR_CPU] = { .type = NLA_U32 },
};

/* NLA_POLICY_RANGE holds only s16 bounds. */
static struct netlink_range_validation nh_timeout_range = {
	.min = 1,
	.max = NH_TIMEOUT_MS_MAX,
};

/* Reply-only attributes are absent: a request carrying one is refused. */
static const struct nla_policy nh_policy[NH_ATTR_MAX + 1] = {
	[NH_ATTR_PCI_DEV] = { .type = NLA_NUL_STRING, .len = NH_PCI_DEV_LEN - 1 },
	[NH_ATTR_EPOCH] = { .type = NLA_U64 },
	[NH_ATTR_TIMEOUT_MS] = NLA_POLICY_FULL_RANGE(NLA_U32, &nh_timeout_range),
	[NH_ATTR_REROUTE_MODE] = NLA_POLICY_RANGE(NLA_U32, NH_REROUTE_AFFINITY,
						  NH_REROUTE_RAW),
	[NH_ATTR_TARGET_CPU] = { .type = NLA_U32 },
	[NH_ATTR_MSI_LIST] = NLA_POLICY_NESTED_ARRAY(nh_msi_policy),
};

static struct genl_family nh_family;

/* Everything one request works on; released by nh_req_end(). */
struct nh_req {
	struct genl_info *info;
	struct pci_dev *pdev;
	struct nh_dev *d;
	struct sk_buff *reply;
};

static int nh_req_parse_dev(struct nh_req *r, bool create)
{
	struct netlink_ext_ack *extack = r->info->extack;
	struct nlattr *attr = r->info->attrs[NH_ATTR_PCI_DEV];
	unsigned int domain, bus, slot, fn;
	char tail;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_PCI_DEV))
		return -EINVAL;
	if (sscanf(nla_data(attr), "%x:%x:%x.%x%c", &domain, &bus, &slot, &fn,
		   &tail) != 4 || domain > 0xffff || bus > 0xff || slot > 0x1f ||
	    fn > 7) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "expected a PCI address dddd:bb:dd.f");
		return -EINVAL;
	}
	r->pdev = pci_get_domain_bus_and_slot(domain, bus, PCI_DEVFN(slot, fn));
	if (!r->pdev) {
		NL_SET_ERR_MSG_ATTR(extack, attr, "no such PCI function");
		return -ENODEV;
	}
	r->d = nh_dev_get(r->pdev, create);
	if (create && !r->d) {
		NL_SET_ERR_MSG_MOD(extack, "too many functions tracked");
		return -ENOSPC;
	}
	return 0;
}

/* Fencing: a stale daemon instance carries a lower epoch. */
static int nh_req_check_epoch(struct nh_req *r)
{
	struct nlattr *attr = r->info->attrs[NH_ATTR_EPOCH];
	u64 epoch;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_EPOCH))
		return -EINVAL;
	epoch = nla_get_u64(attr);
	if (epoch < r->d->max_epoch) {
		NL_SET_ERR_MSG_ATTR(r->info->extack, attr,
				    "epoch is lower than the highest seen for this device");
		return -ESTALE;
	}
	r->d->max_epoch = epoch;
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

static int nh_put_u64(struct sk_buff *skb, int type, u64 value)
{
	return nla_put_u64_64bit(skb, type, value, NH_ATTR_PAD);
}

/* The status every reply carries. */
static int nh_put_status(struct sk_buff *skb, struct nh_req *r)
{
	const struct nh_dev *d = r->d;
	struct net_device *dev = d && d->gated_dev ? d->gated_dev :
						   nh_netdev_of(r->pdev);

	if (nla_put_u32(skb, NH_ATTR_STATE, nh_dev_state(d)) ||
	    nh_put_u64(skb, NH_ATTR_EPOCH, d ? d->max_epoch : 0) ||
	    nla_put_u32(skb, NH_ATTR_MSI_MODE, nh_msi_mode(r->pdev)))
		return -EMSGSIZE;
	if (dev && (nla_put_string(skb, NH_ATTR_IFNAME, dev->name) ||
		    nla_put_u32(skb, NH_ATTR_IFINDEX, dev->ifindex) ||
		    nh_put_u64(skb, NH_ATTR_BQL_INFLIGHT, nh_bql_inflight(dev))))
		return -EMSGSIZE;
	if (!d)
		return 0;
	if (nh_put_u64(skb, NH_ATTR_HELD_XMITS, atomic64_read(&d->held_xmits)) ||
	    nh_put_u64(skb, NH_ATTR_XMITS_WHILE_QUIESCED,
		       atomic64_read(&d->xmits_while_quiesced)) ||
	    nh_put_u64(skb, NH_ATTR_POLLS_WHILE_QUIESCED,
		       atomic64_read(&d->polls_while_quiesced)) ||
	    nh_put_u64(skb, NH_ATTR_DRAINED_TX_BYTES, d->drained_tx_bytes) ||
	    nh_put_u64(skb, NH_ATTR_DRAINED_TX_PACKETS, d->drained_tx_packets) ||
	    nh_put_u64(skb, NH_ATTR_DRAINED_RX_PACKETS,
		       atomic64_read(&d->drain_rx_work)) ||
	    nla_put_u32(skb, NH_ATTR_NAPI_COUNT, d->n_napis) ||
	    nla_put_u32(skb, NH_ATTR_VECTORS_MASKED, d->irqs_masked) ||
	    nh_put_u64(skb, NH_ATTR_QUIESCE_NS, d->quiesce_ns))
		return -EMSGSIZE;
	return 0;
}

static int nh_put_msi(struct sk_buff *skb, struct nh_req *r, int type)
{
	struct nh_msi_entry *e;
	int n, err;

	e = kcalloc(NH_MAX_VECTORS, sizeof(*e), GFP_KERNEL);
	if (!e)
		return -ENOMEM;
	n = nh_msi_read(r->pdev, e, NH_MAX_VECTORS);
	err = n < 0 ? n : nh_put_msi_list(skb, type, e, n);
	kfree(e);
	return err;
}

/* NH_ATTR_MSI_LIST of a REROUTE request, into @e (up to NH_MAX_VECTORS). */
static int nh_parse_msi_list(struct nh_req *r, struct nh_msi_entry *e,
			     bool raw)
{
	struct netlink_ext_ack *extack = r->info->extack;
	struct nlattr *tb[NH_MSI_ATTR_MAX + 1];
	struct nlattr *item;
	int rem, n = 0, err;

	nla_for_each_nested(item, r->info->attrs[NH_ATTR_MSI_LIST], rem) {
		if (n == NH_MAX_VECTORS) {
			NL_SET_ERR_MSG_ATTR(extack, item, "too many vectors");
			return -E2BIG;
		}
		err = nla_parse_nested(tb, NH_MSI_ATTR_MAX, item, nh_msi_policy,
				       extack);
		if (err)
			return err;
		if (NL_REQ_ATTR_CHECK(extack, item, tb, NH_MSI_ATTR_INDEX))
			return -EINVAL;
		if (raw && (NL_REQ_ATTR_CHECK(extack, item, tb, NH_MSI_ATTR_ADDRESS) ||
			    NL_REQ_ATTR_CHECK(extack, item, tb, NH_MSI_ATTR_DATA)))
			return -EINVAL;
		if (!raw && NL_REQ_ATTR_CHECK(extack, item, tb, NH_MSI_ATTR_CPU))
			return -EINVAL;
		e[n].index = nla_get_u32(tb[NH_MSI_ATTR_INDEX]);
		if (raw) {
			e[n].address = nla_get_u64(tb[NH_MSI_ATTR_ADDRESS]);
			e[n].data = nla_get_u32(tb[NH_MSI_ATTR_DATA]);
		} else {
			e[n].cpu = nla_get_u32(tb[NH_MSI_ATTR_CPU]);
		}
		n++;
	}
	return n;
}

/*
 * Affinity mode without a list: every vector of the function to
 * NH_ATTR_TARGET_CPU.
 */
static int nh_all_vectors_to(struct nh_req *r, struct nh_msi_entry *e)
{
	u32 cpu;
	int n, i;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_TARGET_CPU))
		return -EINVAL;
	cpu = nla_get_u32(r->info->attrs[NH_ATTR_TARGET_CPU]);
	n = nh_msi_read(r->pdev, e, NH_MAX_VECTORS);
	for (i = 0; i < n; i++)
		e[i].cpu = cpu;
	return n;
}

static int nh_do_reroute(struct nh_req *r)
{
	struct netlink_ext_ack *extack = r->info->extack;
	struct nh_msi_entry *req;
	u32 mode;
	int n, err;

	if (GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_REROUTE_MODE))
		return -EINVAL;
	mode = nla_get_u32(r->info->attrs[NH_ATTR_REROUTE_MODE]);
	if (mode == NH_REROUTE_RAW &&
	    GENL_REQ_ATTR_CHECK(r->info, NH_ATTR_MSI_LIST))
		return -EINVAL;
	if (nh_msi_mode(r->pdev) == NH_MSI_MODE_NONE) {
		NL_SET_ERR_MSG_MOD(extack, "function has neither MSI nor MSI-X enabled");
		return -EOPNOTSUPP;
	}
	req = kcalloc(NH_MAX_VECTORS, sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	err = nh_put_msi(r->reply, r, NH_ATTR_MSI_PREVIOUS);
	if (err)
		goto out;
	if (r->info->attrs[NH_ATTR_MSI_LIST])
		n = nh_parse_msi_list(r, req, mode == NH_REROUTE_RAW);
	else
		n = nh_all_vectors_to(r, req);
	if (n < 0) {
		err = n;
		goto out;
	}
	if (mode == NH_REROUTE_RAW)
		err = nh_msi_reroute_raw(r->pdev, req, n, extack);
	else
		err = nh_msi_reroute_affinity(r->pdev, req, n, extack);
	if (!err)
		err = nh_put_msi(r->reply, r, NH_ATTR_MSI_LIST);
out:
	kfree(req);
	return err;
}

static int nh_do_op(struct nh_req *r, u8 cmd)
{
	struct netlink_ext_ack *extack = r->info->extack;
	unsigned int timeout_ms = NH_DEFAULT_TIMEOUT_MS;
	struct nh_dev *d = r->d;
	int err;

	if (cmd == NH_CMD_STATUS)
		return 0;
	if (cmd == NH_CMD_READ_MSI)
		return nh_put_msi(r->reply, r, NH_ATTR_MSI_LIST);
	err = nh_req_check_epoch(r);
	if (err)
		return err;
	switch (cmd) {
	case NH_CMD_QUIESCE:
		if (d->released) {
			NL_SET_ERR_MSG_MOD(extack, "released to another node");
			return -EBUSY;
		}
		if (r->info->attrs[NH_ATTR_TIMEOUT_MS])
			timeout_ms = nla_get_u32(r->info->attrs[NH_ATTR_TIMEOUT_MS]);
		return nh_quiesce(d, r->pdev, timeout_ms, extack);
	case NH_CMD_RESUME:
		if (d->released) {
			NL_SET_ERR_MSG_MOD(extack, "released to another node: ATTACH with the new owner's epoch");
			return -EBUSY;
		}
		nh_resume(d);
		return 0;
	case NH_CMD_ATTACH:
		nh_resume(d);
		d->released = false;
		return 0;
	case NH_CMD_RELEASE:
		if (!d->quiesced) {
			NL_SET_ERR_MSG_MOD(extack, "not quiesced: QUIESCE before RELEASE");
			return -EBUSY;
		}
		d->released = true;
		return 0;
	case NH_CMD_REROUTE:
		return nh_do_reroute(r);
	}
	return -EOPNOTSUPP;
}

static int nh_doit(struct sk_buff *skb, struct genl_info *info)
{
	u8 cmd = info->genlhdr->cmd;
	bool changes = cmd != NH_CMD_STATUS && cmd != NH_CMD_READ_MSI;
	struct nh_req r = { .info = info };
	void *hdr;
	int err;

	r.reply = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!r.reply)
		return -ENOMEM;
	hdr = genlmsg_put_reply(r.reply, info, &nh_family, 0, cmd);
	if (!hdr) {
		nlmsg_free(r.reply);
		return -EMSGSIZE;
	}
	rtnl_lock();
	err = nh_req_parse_dev(&r, changes);
	if (!err)
		err = nh_do_op(&r, cmd);
	if (!err)
		err = nh_put_status(r.reply, &r);
	rtnl_unlock();
	pci_dev_put(r.pdev);
	if (err) {
		nlmsg_free(r.reply);
		return err;
	}
	genlmsg_end(r.reply, hdr);
	return genlmsg_reply(r.reply, info);
}

static const struct genl_small_ops nh_ops[] = {
	{ .cmd = NH_CMD_QUIESCE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RESUME, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_ATTACH, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_RELEASE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_READ_MSI, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_REROUTE, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
	{ .cmd = NH_CMD_STATUS, .doit = nh_doit, .flags = GENL_ADMIN_PERM },
};

static struct genl_family nh_family __ro_after_init = {
	.name = NH_GENL_NAME,
	.version = NH_GENL_VERSION,
	.maxattr = NH_ATTR_MAX,
	.policy = nh_policy,
	.module = THIS_MODULE,
	.small_ops = nh_ops,
	.n_small_ops = ARRAY_SIZE(nh_ops),
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
