// SPDX-License-Identifier: GPL-2.0
/*
 * Read and move a function's MSI/MSI-X messages.
 *
 * Two ways to move an interrupt:
 *  - affinity: within one kernel, the kernel owns the vector space, so we
 *    ask it for a vector on the target CPU (irq_set_affinity) and verify
 *    that the message it programmed names that CPU's APIC ID;
 *  - raw: across kernels, the target node reserved a vector on its CPU and
 *    sends the message; we write it into the MSI-X table with the masked
 *    sequence mask -> write -> read back -> compare -> restore the mask.
 * Since 5.12 user space may not map a BAR a driver owns, so the table is
 * written here, through the mapping the PCI core made for the driver.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bitfield.h>
#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/irq.h>
#include <linux/msi.h>
#include <linux/pci.h>
#include <linux/slab.h>
#ifdef CONFIG_X86
#include <asm/apic.h>
#include <asm/irq_vectors.h>
#endif

#include "nh_internal.h"

/* x86 MSI address: bit 4 selects the remappable (IRTE handle) format. */
#define NH_MSI_ADDR_REMAPPABLE BIT(4)
#define NH_MSI_ADDR_BASE_MASK 0xfff00000u
#define NH_MSI_ADDR_BASE 0xfee00000u
#define NH_MSI_ADDR_DEST(addr) (((addr) >> 12) & 0xff)
#define NH_MSI_ADDR_RESERVED GENMASK(1, 0)
/* x86 MSI data: vector 7:0, delivery mode 10:8, level 14, trigger 15. */
#define NH_MSI_DATA_VECTOR GENMASK(7, 0)
#define NH_MSI_DATA_DELIVERY GENMASK(10, 8)
#define NH_MSI_DELIVERY_FIXED 0
#define NH_MSI_DELIVERY_LOWPRI 1
#ifdef CONFIG_X86
#define NH_MSI_VECTOR_MIN FIRST_EXTERNAL_VECTOR
#define NH_MSI_VECTOR_END FIRST_SYSTEM_VECTOR
#else
#define NH_MSI_VECTOR_MIN 0x20
#define NH_MSI_VECTOR_END 0xec
#endif
#define NH_AFFINITY_VERIFY_MS 2000

enum nh_msi_mode nh_msi_mode(struct pci_dev *pdev)
{
	if (pdev->msix_enabled)
		return NH_MSI_MODE_MSIX;
	if (pdev->msi_enabled)
		return NH_MSI_MODE_MSI;
	return NH_MSI_MODE_NONE;
}

/**
 * nh_msi_count() - room for the function's vectors
 * @pdev: the function
 *
 * Return: MSI-X table size, 32 for MSI, 0 without either.
 */
int nh_msi_count(struct pci_dev *pdev)
{
	if (pdev->msix_enabled)
		return pci_msix_vec_count(pdev);
	return pdev->msi_enabled ? 32 : 0;
}

/**
 * nh_msi_check_raw() - whether raw messages are safe to write
 * @req: per vector: @index, @address, @data
 * @n: entries in @req
 * @extack: where the first bad entry is explained
 *
 * Only what a device may send to an OS node's ordinary interrupt handler:
 * the non-remappable x86 format at 0xfee00000 (no upper address bits),
 * fixed or lowest-priority delivery (never SMI, NMI, INIT or ExtINT),
 * edge-triggered, and a device vector (0x20 up to the system vectors).
 *
 * Return: 0, or -EINVAL.
 */
int nh_msi_check_raw(const struct nh_msi_entry *req, int n,
		     struct netlink_ext_ack *extack)
{
	int i;

	for (i = 0; i < n; i++) {
		u64 addr = req[i].address;
		u32 data = req[i].data;
		u32 vector = FIELD_GET(NH_MSI_DATA_VECTOR, data);
		u32 delivery = FIELD_GET(NH_MSI_DATA_DELIVERY, data);

		if (upper_32_bits(addr) ||
		    (lower_32_bits(addr) & NH_MSI_ADDR_BASE_MASK) != NH_MSI_ADDR_BASE ||
		    (addr & NH_MSI_ADDR_RESERVED)) {
			NL_SET_ERR_MSG_MOD(extack, "address is not an x86 MSI address");
			return -EINVAL;
		}
		if (addr & NH_MSI_ADDR_REMAPPABLE) {
			NL_SET_ERR_MSG_MOD(extack, "remappable-format address refused");
			return -EINVAL;
		}
		if (data & ~(NH_MSI_DATA_VECTOR | NH_MSI_DATA_DELIVERY)) {
			NL_SET_ERR_MSG_MOD(extack,
					   "data word must be edge-triggered with no reserved bits");
			return -EINVAL;
		}
		if (delivery != NH_MSI_DELIVERY_FIXED &&
		    delivery != NH_MSI_DELIVERY_LOWPRI) {
			NL_SET_ERR_MSG_MOD(extack,
					   "delivery mode must be fixed or lowest priority");
			return -EINVAL;
		}
		if (vector < NH_MSI_VECTOR_MIN || vector >= NH_MSI_VECTOR_END) {
			NL_SET_ERR_MSG_MOD(extack, "vector is an exception or system vector");
			return -EINVAL;
		}
	}
	return 0;
}

static void __iomem *nh_msix_entry(const struct msi_desc *desc)
{
	return desc->pci.mask_base + desc->msi_index * PCI_MSIX_ENTRY_SIZE;
}

static bool nh_msix_writable(const struct msi_desc *desc)
{
	return desc->pci.msi_attrib.is_msix && !desc->pci.msi_attrib.is_virtual;
}

static u32 nh_irq_cpu(unsigned int irq)
{
	struct irq_data *irqd = irq_get_irq_data(irq);
	const struct cpumask *mask;

	if (!irqd)
		return U32_MAX;
	mask = irq_data_get_effective_affinity_mask(irqd);
	if (!mask || cpumask_empty(mask))
		mask = irq_data_get_affinity_mask(irqd);
	return cpumask_first(mask);
}

/* The message the device holds now, read from the hardware. */
static void nh_msi_fill(struct pci_dev *pdev, struct msi_desc *desc,
			struct nh_msi_entry *e)
{
	e->index = desc->msi_index;
	e->irq = desc->irq;
	e->cpu = nh_irq_cpu(desc->irq);
	e->masked = false;
	if (nh_msix_writable(desc)) {
		void __iomem *base = nh_msix_entry(desc);

		e->address = readl(base + PCI_MSIX_ENTRY_LOWER_ADDR) |
			     (u64)readl(base + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
		e->data = readl(base + PCI_MSIX_ENTRY_DATA);
		e->masked = readl(base + PCI_MSIX_ENTRY_VECTOR_CTRL) &
			    PCI_MSIX_ENTRY_CTRL_MASKBIT;
	} else if (!desc->pci.msi_attrib.is_msix) {
		int pos = pdev->msi_cap;
		u32 lo, hi = 0, mask;
		u16 data;

		pci_read_config_dword(pdev, pos + PCI_MSI_ADDRESS_LO, &lo);
		if (desc->pci.msi_attrib.is_64) {
			pci_read_config_dword(pdev, pos + PCI_MSI_ADDRESS_HI, &hi);
			pci_read_config_word(pdev, pos + PCI_MSI_DATA_64, &data);
		} else {
			pci_read_config_word(pdev, pos + PCI_MSI_DATA_32, &data);
		}
		e->address = lo | (u64)hi << 32;
		e->data = data;
		if (desc->pci.msi_attrib.can_mask) {
			pci_read_config_dword(pdev, pos + desc->pci.mask_pos, &mask);
			e->masked = mask & BIT(0);
		}
	} else {
		/* A virtual MSI-X entry has no table slot: the kernel's copy. */
		e->address = desc->msg.address_lo |
			     (u64)desc->msg.address_hi << 32;
		e->data = desc->msg.data;
	}
}

/**
 * nh_msi_read() - the function's messages, one per vector
 * @pdev: the function
 * @out: where to store them
 * @max: room in @out
 *
 * Return: the number of vectors, or -E2BIG if @out is too small.
 */
int nh_msi_read(struct pci_dev *pdev, struct nh_msi_entry *out, int max)
{
	struct msi_desc *desc;
	int n = 0;

	msi_lock_descs(&pdev->dev);
	msi_for_each_desc(desc, &pdev->dev, MSI_DESC_ASSOCIATED) {
		if (n == max) {
			n = -E2BIG;
			break;
		}
		nh_msi_fill(pdev, desc, &out[n++]);
	}
	msi_unlock_descs(&pdev->dev);
	return n;
}

static struct msi_desc *nh_msi_find(struct pci_dev *pdev, u32 index)
{
	struct msi_desc *desc;

	msi_for_each_desc(desc, &pdev->dev, MSI_DESC_ASSOCIATED) {
		if (desc->msi_index == index)
			return desc;
	}
	return NULL;
}

/*
 * The descriptor of every requested vector, or an error naming the first
 * request that cannot be served; nothing is written before all are found.
 */
static int nh_msi_lookup(struct pci_dev *pdev, const struct nh_msi_entry *req,
			 int n, struct msi_desc **descs,
			 struct netlink_ext_ack *extack)
{
	int i;

	for (i = 0; i < n; i++) {
		descs[i] = nh_msi_find(pdev, req[i].index);
		if (!descs[i]) {
			NL_SET_ERR_MSG_MOD(extack, "no vector with that index");
			return -ENOENT;
		}
	}
	return 0;
}

static bool nh_msg_matches(const struct msi_desc *desc, const struct nh_msi_entry *hw)
{
	u64 cached = desc->msg.address_lo | (u64)desc->msg.address_hi << 32;

	return hw->address == cached && hw->data == desc->msg.data;
}

/*
 * x86 moves an MSI only when the vector next fires (from the ack, where the
 * old vector is known idle).  An idle vector (e1000e's link vector fires
 * only on link changes) would keep its old message indefinitely, so fire it
 * through the interrupt chip's retrigger, as the kernel's own resend does:
 * MSI handlers must tolerate such an extra call.  It may take more than one:
 * while an earlier move still waits for its first interrupt on the new
 * vector, the kernel refuses the next move (-EBUSY) and keeps it pending, so
 * the verify loop retriggers until the move is done.  A disabled vector (a
 * quiesced device) completes its move when it is enabled again.
 */
static void nh_complete_pending_move(unsigned int irq)
{
	struct irq_data *irqd = irq_get_irq_data(irq);

	if (irqd && irqd_is_setaffinity_pending(irqd) && !irqd_irq_disabled(irqd))
		irq_chip_retrigger_hierarchy(irqd);
}

/**
 * nh_msi_reroute_affinity() - move vectors to CPUs through the kernel
 * @pdev: the function
 * @req: per vector: @index and target @cpu
 * @n: entries in @req
 * @extack: where errors are explained
 *
 * After the kernel accepted the affinity, wait until the device's message
 * (read from the hardware) equals the kernel's and names the target CPU as
 * the APIC driver addresses it (its physical APIC ID, or its logical ID in
 * flat logical mode, which is what QEMU's two-CPU guests use).  On x86
 * the kernel may defer the move to the next interrupt of the vector, hence
 * the bounded wait.
 *
 * Return: 0, or a negative errno.
 */
int nh_msi_reroute_affinity(struct pci_dev *pdev, const struct nh_msi_entry *req,
			    int n, struct netlink_ext_ack *extack)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(NH_AFFINITY_VERIFY_MS);
	struct msi_desc **descs;
	struct nh_msi_entry hw;
	bool done = false;
	int i, err;

	descs = kcalloc(n, sizeof(*descs), GFP_KERNEL);
	if (!descs)
		return -ENOMEM;
	msi_lock_descs(&pdev->dev);
	err = nh_msi_lookup(pdev, req, n, descs, extack);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		if (req[i].cpu >= nr_cpu_ids || !cpu_online(req[i].cpu)) {
			NL_SET_ERR_MSG_MOD(extack, "target CPU is not online");
			err = -EINVAL;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		err = irq_set_affinity(descs[i]->irq, cpumask_of(req[i].cpu));
		if (err) {
			NL_SET_ERR_MSG_MOD(extack,
					   "the kernel refused the affinity (managed interrupt?)");
			goto out;
		}
	}
	do {
		done = true;
		for (i = 0; i < n; i++) {
			nh_complete_pending_move(descs[i]->irq);
			nh_msi_fill(pdev, descs[i], &hw);
			if (!nh_msg_matches(descs[i], &hw) || hw.cpu != req[i].cpu)
				done = false;
#ifdef CONFIG_X86
			else if (!(hw.address & NH_MSI_ADDR_REMAPPABLE) &&
				 NH_MSI_ADDR_DEST(hw.address) !=
				 (apic->calc_dest_apicid(req[i].cpu) & 0xff))
				done = false;
#endif
		}
		if (done)
			break;
		usleep_range(10000, 20000);
	} while (time_before(jiffies, deadline));
	if (!done) {
		NL_SET_ERR_MSG_MOD(extack, "move still pending (next interrupt)");
		err = -EAGAIN;
	}
out:
	msi_unlock_descs(&pdev->dev);
	kfree(descs);
	return err;
}

static void nh_msix_write(void __iomem *base, u64 address, u32 data)
{
	writel(lower_32_bits(address), base + PCI_MSIX_ENTRY_LOWER_ADDR);
	writel(upper_32_bits(address), base + PCI_MSIX_ENTRY_UPPER_ADDR);
	writel(data, base + PCI_MSIX_ENTRY_DATA);
}

/*
 * One entry, the careful way.  The vector's irq is disabled around it (this
 * nests with a quiesce's disable) so that no handler runs and the kernel's
 * own masking cannot interleave; the entry's mask bit is set by hand so the
 * device holds, rather than sends, an interrupt during the write.
 */
static int nh_msix_rewrite(struct msi_desc *desc, u64 address, u32 data,
			   u64 *old_address, u32 *old_data)
{
	void __iomem *base = nh_msix_entry(desc);
	void __iomem *ctrl_reg = base + PCI_MSIX_ENTRY_VECTOR_CTRL;
	u32 ctrl, lo, hi, rdata;
	int err = 0;

	disable_irq(desc->irq);
	ctrl = readl(ctrl_reg);
	writel(ctrl | PCI_MSIX_ENTRY_CTRL_MASKBIT, ctrl_reg);
	readl(ctrl_reg); /* flush the posted write: masked from here on */

	*old_address = readl(base + PCI_MSIX_ENTRY_LOWER_ADDR) |
		       (u64)readl(base + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
	*old_data = readl(base + PCI_MSIX_ENTRY_DATA);
	nh_msix_write(base, address, data);

	lo = readl(base + PCI_MSIX_ENTRY_LOWER_ADDR);
	hi = readl(base + PCI_MSIX_ENTRY_UPPER_ADDR);
	rdata = readl(base + PCI_MSIX_ENTRY_DATA);
	if (lo != lower_32_bits(address) || hi != upper_32_bits(address) ||
	    rdata != data) {
		nh_msix_write(base, *old_address, *old_data);
		err = -EIO;
	}
	/* Unmasking lets the device send what it held pending meanwhile. */
	writel(ctrl, ctrl_reg);
	readl(ctrl_reg);
	enable_irq(desc->irq);
	return err;
}

/**
 * nh_msi_reroute_raw() - write given messages into the MSI-X table
 * @pdev: the function
 * @req: per vector: @index, @address, @data
 * @n: entries in @req
 * @extack: where errors are explained
 *
 * The messages were checked by nh_msi_check_raw().  All entries are looked
 * up before the first write; if a write does not read
 * back, the entries already written are restored.  The kernel's cached
 * messages are left alone: within one kernel the raw mode only makes sense
 * with messages the kernel itself handed out (the VM test writes back the
 * ones it read), across kernels this node gives the vectors away.
 *
 * Return: 0, or a negative errno.
 */
int nh_msi_reroute_raw(struct pci_dev *pdev, const struct nh_msi_entry *req,
		       int n, struct netlink_ext_ack *extack)
{
	struct msi_desc **descs;
	u64 *old_address;
	u32 *old_data;
	struct nh_msi_entry hw;
	int i, err;

	descs = kcalloc(n, sizeof(*descs), GFP_KERNEL);
	old_address = kcalloc(n, sizeof(*old_address), GFP_KERNEL);
	old_data = kcalloc(n, sizeof(*old_data), GFP_KERNEL);
	if (!descs || !old_address || !old_data) {
		err = -ENOMEM;
		goto free;
	}
	msi_lock_descs(&pdev->dev);
	err = nh_msi_lookup(pdev, req, n, descs, extack);
	for (i = 0; !err && i < n; i++) {
		if (!nh_msix_writable(descs[i])) {
			NL_SET_ERR_MSG_MOD(extack, "raw rewrite needs MSI-X; use affinity for MSI");
			err = -EOPNOTSUPP;
			break;
		}
		nh_msi_fill(pdev, descs[i], &hw);
		if (hw.address & NH_MSI_ADDR_REMAPPABLE) {
			NL_SET_ERR_MSG_MOD(extack, "interrupt remapping is on");
			err = -EOPNOTSUPP;
			break;
		}
	}
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		err = nh_msix_rewrite(descs[i], req[i].address, req[i].data,
				      &old_address[i], &old_data[i]);
		if (err) {
			NL_SET_ERR_MSG_MOD(extack,
					   "MSI-X entry did not read back as written; restored");
			break;
		}
	}
	while (err && --i >= 0) {
		u64 unused_address;
		u32 unused_data;

		nh_msix_rewrite(descs[i], old_address[i], old_data[i],
				&unused_address, &unused_data);
	}
out:
	msi_unlock_descs(&pdev->dev);
free:
	kfree(descs);
	kfree(old_address);
	kfree(old_data);
	return err;
}

/**
 * nh_window_read() - the messages of a contract device's MSI-X window
 * @hd: the device
 * @out: where to store them
 * @max: room in @out
 *
 * Return: the number of entries, or -E2BIG.
 */
int nh_window_read(const struct nh_handover_dev *hd, struct nh_msi_entry *out,
		   int max)
{
	unsigned int i;

	if (hd->msix_entries > max)
		return -E2BIG;
	for (i = 0; i < hd->msix_entries; i++) {
		void __iomem *base = hd->msix_table + i * PCI_MSIX_ENTRY_SIZE;

		out[i].index = i;
		out[i].irq = 0;
		out[i].cpu = U32_MAX;
		out[i].address = readl(base + PCI_MSIX_ENTRY_LOWER_ADDR) |
				 (u64)readl(base + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
		out[i].data = readl(base + PCI_MSIX_ENTRY_DATA);
		out[i].masked = readl(base + PCI_MSIX_ENTRY_VECTOR_CTRL) &
				PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	return hd->msix_entries;
}

static void nh_window_mask(void __iomem *base, bool mask)
{
	void __iomem *ctrl_reg = base + PCI_MSIX_ENTRY_VECTOR_CTRL;
	u32 ctrl = readl(ctrl_reg);

	if (mask)
		ctrl |= PCI_MSIX_ENTRY_CTRL_MASKBIT;
	else
		ctrl &= ~PCI_MSIX_ENTRY_CTRL_MASKBIT;
	writel(ctrl, ctrl_reg);
	readl(ctrl_reg); /* flush the posted write */
}

/**
 * nh_window_reroute() - write messages into a contract device's window
 * @hd: the device (quiesced or released by this node)
 * @req: per vector: @index, @address, @data (checked by nh_msi_check_raw())
 * @n: entries in @req
 * @extack: where errors are explained
 *
 * Per entry: mask, write, read back, compare.  The entries stay masked:
 * the device holds what it signals in the pending bits until the target's
 * ATTACH unmasks them after its driver's attach.  If an entry does not
 * read back, every entry written is restored with its mask bit.
 *
 * Return: 0, -ENOENT for an index outside the window, -EIO.
 */
int nh_window_reroute(const struct nh_handover_dev *hd,
		      const struct nh_msi_entry *req, int n,
		      struct netlink_ext_ack *extack)
{
	struct nh_msi_entry *old;
	int i, err = 0;

	for (i = 0; i < n; i++) {
		if (req[i].index >= hd->msix_entries) {
			NL_SET_ERR_MSG_MOD(extack,
					   "no vector with that index in the device's MSI-X window");
			return -ENOENT;
		}
	}
	old = kcalloc(n, sizeof(*old), GFP_KERNEL);
	if (!old)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		void __iomem *base = hd->msix_table + req[i].index * PCI_MSIX_ENTRY_SIZE;

		old[i].masked = readl(base + PCI_MSIX_ENTRY_VECTOR_CTRL) &
				PCI_MSIX_ENTRY_CTRL_MASKBIT;
		nh_window_mask(base, true);
		old[i].address = readl(base + PCI_MSIX_ENTRY_LOWER_ADDR) |
				 (u64)readl(base + PCI_MSIX_ENTRY_UPPER_ADDR) << 32;
		old[i].data = readl(base + PCI_MSIX_ENTRY_DATA);
		nh_msix_write(base, req[i].address, req[i].data);
		if (readl(base + PCI_MSIX_ENTRY_LOWER_ADDR) != lower_32_bits(req[i].address) ||
		    readl(base + PCI_MSIX_ENTRY_UPPER_ADDR) != upper_32_bits(req[i].address) ||
		    readl(base + PCI_MSIX_ENTRY_DATA) != req[i].data) {
			NL_SET_ERR_MSG_MOD(extack,
					   "MSI-X entry did not read back as written; restored");
			err = -EIO;
			i++;
			break;
		}
	}
	while (err && --i >= 0) {
		void __iomem *base = hd->msix_table + req[i].index * PCI_MSIX_ENTRY_SIZE;

		nh_msix_write(base, old[i].address, old[i].data);
		nh_window_mask(base, old[i].masked);
	}
	kfree(old);
	return err;
}

/**
 * nh_window_unmask() - let a contract device's first @n entries signal
 * @hd: the device
 * @n: entries to unmask
 */
void nh_window_unmask(const struct nh_handover_dev *hd, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < min(n, hd->msix_entries); i++)
		nh_window_mask(hd->msix_table + i * PCI_MSIX_ENTRY_SIZE, false);
}
