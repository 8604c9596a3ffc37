/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * `syn --by signature`: SYNs (without ACK, received) counted per TCP-options
 * signature, the one the guard computes (guard_opts_walk in guard.h), so
 * that a flood's tool shows as one dominant signature.
 *
 * The table follows the design of the SYN tuple and source tables: a hash
 * map that user space swaps at every report through a one-slot outer
 * array, then reads whole and empties while no program writes it. It is
 * per-CPU, so that a flood of one signature (every SYN the same key) does
 * not bounce one counter's cache line between CPUs. A signature that finds
 * the table full is counted in syn_sig_untracked instead: every SYN is in
 * exactly one of the two.
 *
 * The options are walked only with the view on (syn_sig_cfg.enabled), and
 * only for SYNs without ACK: `syn` without it costs one test of a constant.
 */
#pragma once

#include "guard.h"

struct syn_sig_config {
	__u8 enabled;
	__u8 pad[7];
};

volatile const struct syn_sig_config syn_sig_cfg = {};

/* The signature without GUARD_OPTS_SIG_DROP, and the interface's slot. */
struct syn_sig_key {
	__u64 sig;
	__u32 slot;
	__u32 pad;
};

const struct syn_sig_key anchor_syn_sig_key __attribute__((unused));

struct syn_sig_table {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct syn_sig_key);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct syn_sig_table);
} syn_sigs SEC(".maps");

/* Per CPU, by slot: SYNs whose signature found the table full (cumulative). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64); /* MAX_INTERFACES */
	__type(key, __u32);
	__type(value, __u64);
} syn_sig_untracked SEC(".maps");

/*
 * The counting runs in programs of its own, reached by a tail call at the
 * very end of the packet path (syn_sig_tail), and not inline. Inline, even
 * as a call to a global function, it changed how clang laid out the whole
 * packet path enough that 6.1's verifier, which prunes far less than
 * 6.12's, went from 81,000 to over 700,000 instructions for `syn` with the
 * longest filter, and refused capture's (E2BIG) with the view off. Here
 * the packet path only writes three words and makes the call, after every
 * decision: each program is verified on its own, and the counting's
 * branches multiply nothing.
 *
 * The packet path hands over the TCP header's offset, the slot and the
 * packet's final action through a per-CPU scratch entry: a tail call keeps
 * only the context, and runs on the same CPU with nothing in between.
 */
struct syn_sig_scratch {
	__u32 tcp_off;
	__u32 slot;
	__u32 action; /* what the program returns: XDP_* or TC_ACT_* */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_sig_scratch);
} syn_sig_scratch SEC(".maps");

static __always_inline void syn_sig_untracked_inc(__u32 slot)
{
	/* Masked for the verifier: slot is below 64. */
	__u32 idx = slot;
	asm volatile("" : "+r"(idx));
	idx &= 63;
	__u64 *val = bpf_map_lookup_elem(&syn_sig_untracked, &idx);
	if (val)
		(*val)++;
}

/*
 * syn_sig_count counts one SYN without ACK under its signature. Most SYNs
 * find their signature's entry (a handful of stacks send most SYNs), so it
 * looks up first and inserts only when that fails.
 */
static __always_inline __u32 syn_sig_count(void *ctx, int ctx_is_skb)
{
	__u32 zero = 0;
	struct syn_sig_scratch *s = bpf_map_lookup_elem(&syn_sig_scratch, &zero);

	if (!s)
		return 0; /* never: a per-CPU array of one always has entry 0 */
	__u32 action = s->action, slot = s->slot;
	/* Set 0 whatever rule set is active: only the drop bit depends on it,
	 * and it is masked off. */
	__u64 sig = ctx_is_skb ? guard_syn_opts_skb(ctx, s->tcp_off, 0) : guard_syn_opts_xdp(ctx, s->tcp_off, 0);
	struct syn_sig_key key = {.sig = sig & ~GUARD_OPTS_SIG_DROP, .slot = slot};
	__u64 one = 1, *val;
	void *table = bpf_map_lookup_elem(&syn_sigs, &zero);

	if (table) {
		val = bpf_map_lookup_elem(table, &key);
		if (val) {
			(*val)++;
			return action;
		}
		if (bpf_map_update_elem(table, &key, &one, BPF_NOEXIST) == 0)
			return action;
		/* Another CPU made it meanwhile, or the table is full. */
		val = bpf_map_lookup_elem(table, &key);
		if (val) {
			(*val)++;
			return action;
		}
	}
	syn_sig_untracked_inc(slot);
	return action;
}

SEC("xdp")
int tcplens_syn_sig_xdp(struct xdp_md *ctx)
{
	return syn_sig_count(ctx, 0);
}

SEC("tc")
int tcplens_syn_sig_tc(struct __sk_buff *skb)
{
	return syn_sig_count(skb, 1);
}

/* One array per program type: the kernel ties a program array to the type
 * of the first program that uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, int(struct xdp_md *));
} syn_sig_tail_xdp SEC(".maps") = {
	.values = {[0] = (void *)&tcplens_syn_sig_xdp},
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, int(struct __sk_buff *));
} syn_sig_tail_tc SEC(".maps") = {
	.values = {[0] = (void *)&tcplens_syn_sig_tc},
};

/*
 * syn_sig_tail ends the packet path of a SYN without ACK received, with
 * the view on: the counting program returns action for it. It returns only
 * if the tail call failed, which leaves the SYN counted as untracked.
 */
static __always_inline void syn_sig_tail(void *ctx, int ctx_is_skb, __u32 tcp_off, __u32 slot, __u32 action)
{
	__u32 zero = 0;
	struct syn_sig_scratch *s = bpf_map_lookup_elem(&syn_sig_scratch, &zero);

	if (s) {
		s->tcp_off = tcp_off;
		s->slot = slot;
		s->action = action;
		if (ctx_is_skb)
			bpf_tail_call(ctx, &syn_sig_tail_tc, 0);
		else
			bpf_tail_call(ctx, &syn_sig_tail_xdp, 0);
	}
	syn_sig_untracked_inc(slot);
}
