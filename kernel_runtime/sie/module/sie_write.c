// SPDX-License-Identifier: GPL-2.0
/*
 * sie_write: the least-privilege write path for Scoped Indirect Execution.
 *
 * BPF kprobe programs can read kernel state but not change it. These kfuncs let a kprobe
 * program change exactly three things, and only at probe addresses that user space
 * registered for a loaded knob (through /sys/module/sie_write/parameters/slots, root only):
 *   - a general-purpose register in the probe's own saved pt_regs,
 *   - the arithmetic flags (CF PF AF ZF SF OF) in the probe's own saved pt_regs,
 *   - the memory cell a registered store instruction just wrote: its address is recomputed
 *     here from the saved base register and the registered displacement, so a program can
 *     never name an arbitrary address. The base may be the saved stack pointer (a local, or
 *     an argument pushed for a call), which is read here and never written.
 * Everything else is refused and counted (parameter "refused").
 *
 * The probe is identified by its saved instruction pointer: on x86 every kprobe flavour
 * (int3, optimized jump, ftrace) hands its handlers regs->ip == probe address + 1.
 * The verifier passes the program's own context for a "struct pt_regs *" argument.
 */
#include <linux/bpf.h>
#include <linux/btf.h>
#include <linux/btf_ids.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>

#define SIE_MAX_SLOTS 256
#define SIE_GP_REGS 15 /* r15 .. di: the general-purpose part of x86-64 pt_regs */
#define SIE_SP_WORD (offsetof(struct pt_regs, sp) / sizeof(unsigned long))
#define SIE_ARITH_FLAGS (X86_EFLAGS_CF | X86_EFLAGS_PF | X86_EFLAGS_AF | X86_EFLAGS_ZF | \
			 X86_EFLAGS_SF | X86_EFLAGS_OF)

enum sie_kind { SIE_REG = 1, SIE_FLAGS = 2, SIE_MEM = 3 };

struct sie_slot {
	unsigned long probe;	/* address the kprobe sits at */
	u32 kind;
	u32 reg_mask;		/* SIE_REG: registers (pt_regs word index) it may write */
	u32 base_reg;		/* SIE_MEM: pt_regs word index of the base register (or sp) */
	s32 disp;		/* SIE_MEM: displacement of the store */
	u32 size;		/* SIE_MEM: 1, 2, 4 or 8 bytes */
};

struct sie_table {
	struct rcu_head rcu;
	unsigned int n;
	struct sie_slot slot[];
};

static struct sie_table __rcu *sie_slots;
static atomic_long_t sie_refused = ATOMIC_LONG_INIT(0);
static atomic_long_t sie_written = ATOMIC_LONG_INIT(0);

/*
 * Is a write allowed at @probe? Several slots may share one probe (two registers loaded
 * by one critical span), so every slot of the probe is asked; @ok decides for one slot.
 */
static bool sie_allowed(unsigned long probe, u32 kind,
			bool (*ok)(const struct sie_slot *s, struct pt_regs *regs, u64 a, u64 b),
			struct pt_regs *regs, u64 a, u64 b)
{
	const struct sie_table *t;
	bool allowed = false;
	unsigned int i;

	rcu_read_lock();
	t = rcu_dereference(sie_slots);
	for (i = 0; t && i < t->n && !allowed; i++)
		allowed = t->slot[i].probe == probe && t->slot[i].kind == kind &&
			  ok(&t->slot[i], regs, a, b);
	rcu_read_unlock();
	return allowed;
}

static int sie_refuse(void)
{
	atomic_long_inc(&sie_refused);
	return -EPERM;
}

static unsigned long *sie_word(struct pt_regs *regs, u32 index)
{
	return (unsigned long *)regs + index;
}

static bool sie_reg_ok(const struct sie_slot *s, struct pt_regs *regs, u64 reg, u64 unused)
{
	return s->reg_mask & (1U << reg);
}

static bool sie_flags_ok(const struct sie_slot *s, struct pt_regs *regs, u64 a, u64 b)
{
	return true;
}

static bool sie_mem_ok(const struct sie_slot *s, struct pt_regs *regs, u64 addr, u64 size)
{
	return s->size == size && addr == *sie_word(regs, s->base_reg) + (long)s->disp;
}

__bpf_kfunc_start_defs();

/* Write general-purpose register @reg (pt_regs word index) of the probe's saved state. */
__bpf_kfunc int sie_write_reg(struct pt_regs *regs, u32 reg, u64 value)
{
	if (reg >= SIE_GP_REGS || !sie_allowed(regs->ip - 1, SIE_REG, sie_reg_ok, regs, reg, 0))
		return sie_refuse();
	*sie_word(regs, reg) = value;
	atomic_long_inc(&sie_written);
	return 0;
}

/* Replace the arithmetic flags selected by @mask with @bits in the probe's saved state. */
__bpf_kfunc int sie_write_flags(struct pt_regs *regs, u64 mask, u64 bits)
{
	if ((mask & ~(u64)SIE_ARITH_FLAGS) ||
	    !sie_allowed(regs->ip - 1, SIE_FLAGS, sie_flags_ok, regs, 0, 0))
		return sie_refuse();
	regs->flags = (regs->flags & ~mask) | (bits & mask);
	atomic_long_inc(&sie_written);
	return 0;
}

/*
 * Overwrite the memory cell at @addr, which must be exactly the destination of a store
 * registered for this probe (saved base register + displacement, same size): the cell
 * the kernel's own instruction has just written, so it is mapped and writable.
 */
__bpf_kfunc int sie_write_mem(struct pt_regs *regs, u64 addr, u32 size, u64 value)
{
	if (!sie_allowed(regs->ip - 1, SIE_MEM, sie_mem_ok, regs, addr, size))
		return sie_refuse();
	switch (size) {
	case 1: WRITE_ONCE(*(u8 *)addr, value); break;
	case 2: WRITE_ONCE(*(u16 *)addr, value); break;
	case 4: WRITE_ONCE(*(u32 *)addr, value); break;
	default: WRITE_ONCE(*(u64 *)addr, value); break;
	}
	atomic_long_inc(&sie_written);
	return 0;
}

__bpf_kfunc_end_defs();

BTF_KFUNCS_START(sie_kfunc_ids)
BTF_ID_FLAGS(func, sie_write_reg)
BTF_ID_FLAGS(func, sie_write_flags)
BTF_ID_FLAGS(func, sie_write_mem)
BTF_KFUNCS_END(sie_kfunc_ids)

static const struct btf_kfunc_id_set sie_kfunc_set = {
	.owner = THIS_MODULE,
	.set = &sie_kfunc_ids,
};

/* Parse one slot: "reg ADDR MASK" | "flags ADDR" | "mem ADDR BASE DISP SIZE". */
static int sie_parse(const char *cmd, struct sie_slot *s)
{
	char kind[8];
	int n;

	memset(s, 0, sizeof(*s));
	if (sscanf(cmd, "%7s %lx", kind, &s->probe) != 2)
		return -EINVAL;
	if (!strcmp(kind, "reg")) {
		n = sscanf(cmd, "%*s %*x %x", &s->reg_mask);
		s->kind = SIE_REG;
		return n == 1 && s->reg_mask && s->reg_mask < (1U << SIE_GP_REGS) ? 0 : -EINVAL;
	}
	if (!strcmp(kind, "flags")) {
		s->kind = SIE_FLAGS;
		return 0;
	}
	if (!strcmp(kind, "mem")) {
		n = sscanf(cmd, "%*s %*x %u %d %u", &s->base_reg, &s->disp, &s->size);
		s->kind = SIE_MEM;
		return n == 3 && (s->base_reg < SIE_GP_REGS || s->base_reg == SIE_SP_WORD) &&
		       (s->size == 1 || s->size == 2 || s->size == 4 || s->size == 8) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

/*
 * "add <slot>", "del <slot>" (removes one identical slot: knobs sharing a probe keep
 * theirs) or "clear".
 */
static int sie_slots_set(const char *val, const struct kernel_param *kp)
{
	struct sie_table *old = rcu_dereference_protected(sie_slots, 1), *new;
	unsigned int i, n = old ? old->n : 0;
	bool adding = !strncmp(val, "add ", 4), removing = !strncmp(val, "del ", 4);
	bool removed = false;
	struct sie_slot slot;

	if (adding || removing) {
		if (sie_parse(val + 4, &slot) || (adding && n >= SIE_MAX_SLOTS))
			return -EINVAL;
	} else if (strncmp(val, "clear", 5)) {
		return -EINVAL;
	}
	new = kzalloc(struct_size(new, slot, n + 1), GFP_KERNEL);
	if (!new)
		return -ENOMEM;
	for (i = 0; i < n && (adding || removing); i++) {
		if (removing && !removed && !memcmp(&old->slot[i], &slot, sizeof(slot))) {
			removed = true;
			continue;
		}
		new->slot[new->n++] = old->slot[i];
	}
	if (adding)
		new->slot[new->n++] = slot;
	rcu_assign_pointer(sie_slots, new);
	if (old)
		kfree_rcu(old, rcu);
	return 0;
}

static int sie_slots_get(char *buf, const struct kernel_param *kp)
{
	static const char *const names[] = { "?", "reg", "flags", "mem" };
	const struct sie_table *t;
	unsigned int i;
	int len = 0;

	rcu_read_lock();
	t = rcu_dereference(sie_slots);
	for (i = 0; t && i < t->n && len < PAGE_SIZE - 80; i++) {
		const struct sie_slot *s = &t->slot[i];

		len += scnprintf(buf + len, PAGE_SIZE - len, "%s %lx %x %u %d %u\n", names[s->kind],
				 s->probe, s->reg_mask, s->base_reg, s->disp, s->size);
	}
	rcu_read_unlock();
	return len;
}

static const struct kernel_param_ops sie_slots_ops = {
	.set = sie_slots_set,
	.get = sie_slots_get,
};
module_param_cb(slots, &sie_slots_ops, NULL, 0600);
MODULE_PARM_DESC(slots, "registered write slots: add|del reg|flags|mem ..., clear");

static int sie_count_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%ld\n", atomic_long_read((atomic_long_t *)kp->arg));
}

static const struct kernel_param_ops sie_count_ops = { .get = sie_count_get };
module_param_cb(refused, &sie_count_ops, &sie_refused, 0444);
MODULE_PARM_DESC(refused, "writes refused because no registered slot allowed them");
module_param_cb(written, &sie_count_ops, &sie_written, 0444);
MODULE_PARM_DESC(written, "writes performed through a registered slot");

static int __init sie_init(void)
{
	return register_btf_kfunc_id_set(BPF_PROG_TYPE_KPROBE, &sie_kfunc_set);
}

static void __exit sie_exit(void)
{
	struct sie_table *t = rcu_dereference_protected(sie_slots, 1);

	RCU_INIT_POINTER(sie_slots, NULL);
	synchronize_rcu();
	kfree(t);
}

module_init(sie_init);
module_exit(sie_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("SIE: kfuncs that write only a kprobe's own registers, flags and registered store slots");
