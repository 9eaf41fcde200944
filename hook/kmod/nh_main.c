// SPDX-License-Identifier: GPL-2.0
/*
 * nh_main.c - module life cycle, the device table, the netdevice notifier
 * and the tracepoint probes that count what happens at the gates.
 *
 * The module never holds a net_device reference between requests: a
 * reference held across NETDEV_UNREGISTER blocks unplug forever.  It
 * remembers the gated netdev as a plain pointer, cleared by the notifier.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/tracepoint.h>

#include "nh_internal.h"

struct nh_dev nh_devs[NH_MAX_DEVS];

/**
 * nh_dev_get() - the slot of a PCI function
 * @pdev: the function
 * @create: allocate a slot if the function has none
 *
 * Context: rtnl_lock held.
 * Return: the slot, or NULL if there is none (and @create is false, or the
 * table is full).
 */
struct nh_dev *nh_dev_get(struct pci_dev *pdev, bool create)
{
	u16 domain = pci_domain_nr(pdev->bus);
	struct nh_dev *free_slot = NULL;
	int i;

	ASSERT_RTNL();
	for (i = 0; i < NH_MAX_DEVS; i++) {
		struct nh_dev *d = &nh_devs[i];

		if (!d->in_use) {
			if (!free_slot)
				free_slot = d;
			continue;
		}
		if (d->domain == domain && d->bus == pdev->bus->number &&
		    d->devfn == pdev->devfn)
			return d;
	}
	if (!create || !free_slot)
		return NULL;
	free_slot->in_use = true;
	free_slot->domain = domain;
	free_slot->bus = pdev->bus->number;
	free_slot->devfn = pdev->devfn;
	return free_slot;
}

/**
 * nh_netdev_of() - the network interface a PCI function's driver registered
 * @pdev: the function
 *
 * Context: rtnl_lock held, which keeps the result registered until unlock.
 * Return: the netdev, or NULL if no driver registered one.
 */
struct net_device *nh_netdev_of(struct pci_dev *pdev)
{
	struct net_device *dev;

	ASSERT_RTNL();
	for_each_netdev(&init_net, dev) {
		if (dev->dev.parent == &pdev->dev)
			return dev;
	}
	return NULL;
}

/**
 * nh_dev_state() - the state reported to user space
 * @d: the slot, or NULL for a function the hook never touched
 */
enum nh_state nh_dev_state(const struct nh_dev *d)
{
	if (!d)
		return NH_STATE_RUNNING;
	if (d->released)
		return NH_STATE_RELEASED;
	if (d->quiesced)
		return NH_STATE_QUIESCED;
	if (d->gated || d->n_napis || d->irqs_masked)
		return NH_STATE_GATED;
	return NH_STATE_RUNNING;
}

/* The slot gating @dev, or NULL.  Called from tracepoints: lock-free. */
static struct nh_dev *nh_dev_gating(const struct net_device *dev)
{
	int i;

	if (!dev)
		return NULL;
	for (i = 0; i < NH_MAX_DEVS; i++) {
		if (READ_ONCE(nh_devs[i].gated_dev) == dev)
			return &nh_devs[i];
	}
	return NULL;
}

/* net:net_dev_queue: an skb entered __dev_queue_xmit for the device. */
static void nh_probe_dev_queue(void *data, struct sk_buff *skb)
{
	struct nh_dev *d = nh_dev_gating(skb->dev);

	if (d)
		atomic64_inc(&d->held_xmits);
}

/* net:net_dev_start_xmit: dev_hard_start_xmit is calling ndo_start_xmit. */
static void nh_probe_start_xmit(void *data, const struct sk_buff *skb,
				const struct net_device *dev)
{
	struct nh_dev *d = nh_dev_gating(dev);

	if (d)
		atomic64_inc(&d->xmits_while_quiesced);
}

/* napi:napi_poll: a poll of one of the device's NAPI instances returned. */
static void nh_probe_napi_poll(void *data, struct napi_struct *napi, int work,
			       int budget)
{
	struct nh_dev *d = nh_dev_gating(napi->dev);

	if (!d)
		return;
	if (READ_ONCE(d->napi_off))
		atomic64_inc(&d->polls_while_quiesced);
	else
		atomic64_add(work, &d->drain_rx_work);
}

struct nh_probe {
	const char *name;
	void *fn;
	struct tracepoint *tp;
};

static struct nh_probe nh_probes[] = {
	{ .name = "net_dev_queue", .fn = nh_probe_dev_queue },
	{ .name = "net_dev_start_xmit", .fn = nh_probe_start_xmit },
	{ .name = "napi_poll", .fn = nh_probe_napi_poll },
};

/*
 * Only napi_poll's tracepoint is exported to modules; the net ones are
 * found by name, which tracepoint_probe_register() accepts as well.
 */
static void nh_find_tracepoint(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(nh_probes); i++) {
		if (!strcmp(tp->name, nh_probes[i].name))
			nh_probes[i].tp = tp;
	}
}

/**
 * nh_probes_register() - attach the counting probes
 *
 * Return: 0, or a negative errno if a tracepoint is missing.
 */
int nh_probes_register(void)
{
	int i, err;

	for_each_kernel_tracepoint(nh_find_tracepoint, NULL);
	for (i = 0; i < ARRAY_SIZE(nh_probes); i++) {
		if (!nh_probes[i].tp) {
			pr_err("tracepoint %s not found\n", nh_probes[i].name);
			err = -ENOENT;
			goto unwind;
		}
		err = tracepoint_probe_register(nh_probes[i].tp,
						nh_probes[i].fn, NULL);
		if (err)
			goto unwind;
	}
	return 0;
unwind:
	while (--i >= 0)
		tracepoint_probe_unregister(nh_probes[i].tp, nh_probes[i].fn,
					    NULL);
	return err;
}

void nh_probes_unregister(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(nh_probes); i++)
		tracepoint_probe_unregister(nh_probes[i].tp, nh_probes[i].fn,
					    NULL);
	/* No probe may still run when the module text goes away. */
	tracepoint_synchronize_unregister();
}

/*
 * A gated device that goes down must be reopened first: the driver's close
 * calls napi_disable() again and would wait forever on a NAPI we disabled,
 * and its free_irq() expects enabled vectors.  Unregistering clears the
 * pointer so that no stale netdev is ever compared or touched.
 */
static int nh_netdev_event(struct notifier_block *nb, unsigned long event,
			   void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	int i;

	if (event != NETDEV_GOING_DOWN && event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	for (i = 0; i < NH_MAX_DEVS; i++) {
		struct nh_dev *d = &nh_devs[i];

		if (!d->in_use || d->gated_dev != dev)
			continue;
		netdev_warn(dev, "going down while gated: reopening NAPI, vectors and queues\n");
		nh_resume(d);
		d->released = false;
	}
	return NOTIFY_DONE;
}

static struct notifier_block nh_netdev_nb = {
	.notifier_call = nh_netdev_event,
};

static int __init nh_init(void)
{
	int err;

	err = nh_probes_register();
	if (err)
		return err;
	err = register_netdevice_notifier(&nh_netdev_nb);
	if (err)
		goto err_probes;
	err = nh_genl_register();
	if (err)
		goto err_notifier;
	pr_info("loaded: generic netlink family \"%s\"\n", NH_GENL_NAME);
	return 0;

err_notifier:
	unregister_netdevice_notifier(&nh_netdev_nb);
err_probes:
	nh_probes_unregister();
	return err;
}

static void __exit nh_exit(void)
{
	int i;

	nh_genl_unregister();
	/* Never leave a device gated behind: nobody could reopen it. */
	rtnl_lock();
	for (i = 0; i < NH_MAX_DEVS; i++) {
		if (nh_devs[i].in_use)
			nh_resume(&nh_devs[i]);
	}
	rtnl_unlock();
	unregister_netdevice_notifier(&nh_netdev_nb);
	nh_probes_unregister();
}

module_init(nh_init);
module_exit(nh_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("nichandover: gate, drain and reroute a NIC for a handover between OS nodes");
MODULE_AUTHOR("nichandover");
