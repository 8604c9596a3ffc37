//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * For tests and benchmarks only, never attached: runs the socket path's
 * filter (sock_common.h, filter_match) on a struct sock_addrs given as the
 * data of BPF_PROG_TEST_RUN, so the filter is checked against Go's own
 * address logic and its cost measured without any tracepoint around it.
 * Returns XDP_PASS for a match, XDP_DROP for none, and writes the
 * addresses back as filter_match left them (v4-mapped ones unmapped).
 */
#include "sock_common.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/*
 * The addresses go to the stack and back through helpers, as in the real
 * programs (an aligned struct on the stack), and so that the baseline
 * cannot be optimised into nothing.
 */
static __always_inline int run(struct xdp_md *ctx, int filtered)
{
	struct sock_addrs a;

	if (bpf_xdp_load_bytes(ctx, 0, &a, sizeof(a)))
		return XDP_ABORTED;
	int match = filtered ? filter_match(&a) : 1;
	if (bpf_xdp_store_bytes(ctx, 0, &a, sizeof(a)))
		return XDP_ABORTED;
	return match ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int filter_probe(struct xdp_md *ctx)
{
	return run(ctx, 1);
}

/* The same copies without the filter: the baseline of the benchmark. */
SEC("xdp")
int filter_probe_baseline(struct xdp_md *ctx)
{
	return run(ctx, 0);
}
