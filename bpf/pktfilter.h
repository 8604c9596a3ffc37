/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packet path's filter: --port, --host, -4, -6, --flags and the
 * tcpdump-style expression, all compiled by user space (internal/pfilter)
 * into one small postfix program that runs here on a stack of bits.
 *
 * Postfix rather than a disjunctive normal form: `(a or b) and (c or d)`
 * stays 7 instructions instead of growing into every combination, and the
 * flags (each a list of alternatives, ANDed) are just more instructions.
 * The program is a `volatile const`: the verifier reads it from the frozen
 * .rodata, so it follows the loop with the opcodes known and checks only
 * the paths this filter takes. An empty program matches every TCP packet.
 *
 * Limits (checked by user space with a one-line message): at most
 * PKT_FILTER_MAX_INSNS instructions, so at most that many operands on the
 * stack, which a 64-bit word holds.
 */
#pragma once

#include "parse.h"

#define PKT_FILTER_MAX_INSNS 32

enum pkt_filter_op {
	PF_TRUE = 0,   /* push 1 */
	PF_PORT = 1,   /* push: a port (per dir) in [port_lo, port_hi] */
	PF_HOST = 2,   /* push: an address (per dir) of family arg inside addr/mask */
	PF_FAMILY = 3, /* push: the packet's family is arg (4 or 6) */
	PF_FLAGS = 4,  /* push: any of the TCP flags in arg are set */
	PF_AND = 5,    /* pop two, push both */
	PF_OR = 6,     /* pop two, push either */
	PF_NOT = 7,    /* negate the top */
};

/* dir of PF_PORT and PF_HOST: which end; both bits: either end, unless
 * PF_DIR_BOTH asks for both ends (tcpdump's `src and dst`). */
#define PF_DIR_SRC 1
#define PF_DIR_DST 2
#define PF_DIR_BOTH 4

struct pkt_filter_insn {
	__u32 addr[4]; /* wire order, masked; IPv4 in addr[0] */
	__u32 mask[4];
	__u16 port_lo; /* host order */
	__u16 port_hi;
	__u8 op;
	__u8 dir;
	__u8 arg;
	__u8 pad;
};

struct pkt_filter_cfg {
	__u8 n_insns;     /* 0: match every TCP packet */
	__u8 needs_addrs; /* some instruction is PF_HOST */
	__u8 pad[6];
	struct pkt_filter_insn insns[PKT_FILTER_MAX_INSNS];
};

volatile const struct pkt_filter_cfg pkt_filter = {};

/*
 * The tests below compute 0 or 1 without a branch, and the barrier keeps
 * clang from turning the arithmetic back into compares and jumps. With
 * jumps, the verifier follows every packet's answers as a separate path,
 * each with a known value on the bit stack: paths that never merge, and
 * every later stage verified once per path. A 31-instruction filter with
 * the capture stage cost the verifier 334,000 instructions, and a longer
 * one with SYN tracking on XDP went past its limits; without jumps the
 * answers are unknown bits and all paths are one.
 */
static __always_inline __u64 pf_nonzero(__u64 x)
{
	__u64 t = x | -x;
	asm volatile("" : "+r"(t));
	return t >> 63;
}

/* a <= b, both below 2^32 */
static __always_inline __u64 pf_le(__u64 a, __u64 b)
{
	__u64 t = b - a;
	asm volatile("" : "+r"(t));
	return (t >> 63) ^ 1;
}

static __always_inline __u64 pf_prefix(const volatile struct pkt_filter_insn *in, const __u32 *a)
{
	__u64 d = ((a[0] ^ in->addr[0]) & in->mask[0]) | ((a[1] ^ in->addr[1]) & in->mask[1]) |
		  ((a[2] ^ in->addr[2]) & in->mask[2]) | ((a[3] ^ in->addr[3]) & in->mask[3]);
	return pf_nonzero(d) ^ 1;
}

static __always_inline __u64 pf_in_range(const volatile struct pkt_filter_insn *in, __u64 port)
{
	return pf_le(in->port_lo, port) & pf_le(port, in->port_hi);
}

/* pf_ends combines what each end matched as dir asks (dir is known to
 * the verifier: it comes from the constant program). */
static __always_inline __u64 pf_ends(__u8 dir, __u64 src, __u64 dst)
{
	if (dir & PF_DIR_BOTH)
		return src & dst;
	return (src & (dir & PF_DIR_SRC)) | (dst & ((dir & PF_DIR_DST) >> 1));
}

/*
 * pkt_filter_match says whether a packet that parse_packet() reported as
 * PARSE_TCP passes the filter.
 */
static __always_inline int pkt_filter_match(void *data, void *data_end, const struct packet *pkt)
{
	__u32 saddr[4] = {}, daddr[4] = {};
	__u64 stack = 0;

	if (pkt_filter.n_insns == 0)
		return 1;
	if (pkt_filter.needs_addrs &&
	    packet_addrs(data, data_end, pkt, (__u8 *)saddr, (__u8 *)daddr) != 0)
		return 0;

	for (__u32 i = 0; i < PKT_FILTER_MAX_INSNS; i++) {
		if (i >= pkt_filter.n_insns)
			break;
		const volatile struct pkt_filter_insn *in = &pkt_filter.insns[i];
		__u8 op = in->op, dir = in->dir;
		__u64 v = 1;

		switch (op) {
		case PF_AND:
			stack = (stack >> 2) << 1 | (stack & (stack >> 1) & 1);
			continue;
		case PF_OR:
			stack = (stack >> 2) << 1 | ((stack | (stack >> 1)) & 1);
			continue;
		case PF_NOT:
			stack ^= 1;
			continue;
		case PF_PORT:
			v = pf_ends(dir, pf_in_range(in, pkt->sport), pf_in_range(in, pkt->dport));
			break;
		case PF_HOST:
			v = (pf_nonzero(pkt->family ^ in->arg) ^ 1) &
			    pf_ends(dir, pf_prefix(in, saddr), pf_prefix(in, daddr));
			break;
		case PF_FAMILY:
			v = pf_nonzero(pkt->family ^ in->arg) ^ 1;
			break;
		case PF_FLAGS:
			v = pf_nonzero(pkt->flags & in->arg);
			break;
		}
		stack = stack << 1 | v;
	}
	return stack & 1;
}
