//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Baselines for benchmarks: the cheapest programs each hook can run, and
 * the parser alone. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "parse.h"

char __license[] SEC("license") = "Dual BSD/GPL";

SEC("xdp")
int empty_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int empty_tc(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

/*
 * The parser alone (bpf/parse.h), with nothing counted or looked up: the
 * floor under any stage that must know a packet is TCP and read its
 * header, so the benchmarks can say how much of a ratio to the empty
 * program is the parse itself.
 */
static __always_inline int parse_only(void *data, void *data_end)
{
	struct packet pkt = {};

	int res = parse_packet(data, data_end, &pkt);

	/* pkt must be in memory here: otherwise clang sinks the TCP flags load
	 * past the bounds check and rebuilds the pointer, which the verifier
	 * refuses. The result decides the verdict, so nothing is elided. */
	asm volatile("" : : "r"(&pkt) : "memory");
	return res == PARSE_TCP && pkt.flags == 0xff;
}

SEC("xdp")
int parse_xdp(struct xdp_md *ctx)
{
	return parse_only((void *)(long)ctx->data, (void *)(long)ctx->data_end) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int parse_tc(struct __sk_buff *skb)
{
	return parse_only((void *)(long)skb->data, (void *)(long)skb->data_end) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
