//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens drops: TCP packets the kernel frees as dropped (skb:kfree_skb),
 * with the kernel's drop reason and the packet's addresses and ports, read
 * from its IP and TCP headers in the skb (CO-RE).
 */
#include "skb_read.h"

#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

/*
 * The classic skb:kfree_skb record, as the kernel's own type names it: only
 * to ask its BTF, with CO-RE, whether this kernel has a drop reason (5.17+)
 * and so passes it to the raw tracepoint as its third argument. Nothing is
 * read through it.
 */
enum skb_drop_reason { __TCPLENS_SKB_DROP_REASON_UNUSED };

struct trace_event_raw_kfree_skb {
	enum skb_drop_reason reason;
} __attribute__((preserve_access_index));

/*
 * Reasons not to report, a bit per enum skb_drop_reason value below 256,
 * set by user space from BTF: SKB_CONSUMED (not a drop) and --skip-reason.
 */
struct drops_cfg {
	__u64 skip_reasons[4];
	__u8 stack; /* --stack: record the kernel stack of each drop */
};

volatile const struct drops_cfg drop_filter = {};

#define DROP_IN 0  /* arrived here (skb_iif set): the destination is local */
#define DROP_OUT 1 /* sent from here: the source is local */

/* One dropped TCP packet. addrs.saddr/sport are always this host's end. */
struct drop_event {
	__u64 ts_ns;
	struct sock_addrs addrs;
	__u32 reason; /* enum skb_drop_reason */
	__u32 pid;
	__u64 location; /* kernel address that dropped it */
	__s32 stack_id; /* in `stacks`; -1 without --stack or when it failed */
	__u8 tcp_flags;
	__u8 direction;  /* DROP_* */
	__u8 has_reason; /* 0 on kernels whose record has no reason (< 5.17) */
	__u8 pad[1];
};

/*
 * Kernel stacks for --stack, by id. Identical stacks share one id and
 * entries are never deleted, so user space may cache an id's symbols.
 * Flags 0 (a full compare) rather than BPF_F_FAST_STACK_CMP: a hash
 * collision then fails with -EEXIST, which is counted, instead of handing
 * out another stack's id. 64 frames reach well past the socket layer and
 * stay under any kernel.perf_event_max_stack setting in use.
 */
#define STACK_DEPTH 64
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1024); /* user space shrinks it to 1 without --stack */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

/* Drops whose stack could not be recorded (map full, collision). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} stack_lost SEC(".maps");

const struct drop_event *unused_drop_event __attribute__((unused));

static __always_inline int skipped(__u32 reason)
{
	__u64 r = reason;
	if (r >= 256)
		return 0;
	/*
	 * Restate the bound where clang cannot drop it: it may spill the value
	 * before the compare and index the map with the reloaded copy, which
	 * 6.1's verifier does not know to be below 256 (it then rejects the
	 * map value access).
	 */
	asm volatile("%0 &= 255" : "+r"(r));
	return (drop_filter.skip_reasons[r / 64] >> (r % 64)) & 1;
}

/*
 * A raw tracepoint (arguments: skb, location, reason from 5.17, rx_sk from
 * 6.12), not the classic one: the kernel skips a classic tracepoint
 * program whenever any such program already runs on the CPU
 * (bpf_prog_active), and kfree_skb fires in softirqs that interrupt
 * process-context programs all the time. A raw tracepoint program is
 * skipped only when it is itself re-entered on the CPU. The reason is read
 * only where the kernel passes one: the record's reason field says so, and
 * an argument a kernel does not pass may not even be read (the attach
 * fails).
 */
SEC("raw_tracepoint/kfree_skb")
int kfree_skb(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sk_buff *skb = (const void *)ctx->args[0];
	__u32 reason = 0;
	int has_reason = bpf_core_field_exists(((struct trace_event_raw_kfree_skb *)0)->reason);
	if (has_reason) {
		reason = ctx->args[2];
		if (skipped(reason))
			return 0;
	}

	struct sock_addrs pkt = {}, a = {};
	struct tcp_hdr th;
	if (skb_tcp_packet(skb, &pkt, &th))
		return 0;

	/* Which end is this host's: a packet that arrived has skb_iif set. */
	int in = BPF_CORE_READ(skb, skb_iif) != 0;
	if (in)
		turn_around(&a, &pkt);
	else
		a = pkt;
	if (!filter_match(&a))
		return 0;

	/* Before the reservation: a stack that cannot be recorded is counted
	 * even when the record is lost too. */
	__s32 stack_id = -1;
	if (drop_filter.stack) {
		long id = bpf_get_stackid(ctx, &stacks, 0);
		if (id >= 0) {
			stack_id = id;
		} else {
			__u32 zero = 0;
			__u64 *n = bpf_map_lookup_elem(&stack_lost, &zero);
			if (n)
				(*n)++;
		}
	}
	struct drop_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = bpf_ktime_get_ns();
	e->addrs = a;
	e->reason = reason;
	e->has_reason = has_reason;
	e->stack_id = stack_id;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->location = ctx->args[1];
	e->tcp_flags = th.flags;
	e->direction = in ? DROP_IN : DROP_OUT;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	submit_event(e);
	return 0;
}
