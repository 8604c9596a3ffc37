//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens drops: TCP packets the kernel frees as dropped (skb:kfree_skb),
 * with the kernel's drop reason and the packet's addresses and ports, read
 * from its IP and TCP headers in the skb (CO-RE).
 */
#include "sock_common.h"
#include "headers/skbuff.h"
#include "headers/net.h"

#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

/*
 * The skb:kfree_skb record, as the kernel's own type names it, relocated
 * with CO-RE: only the fields read here. The layout differs between
 * kernels (6.1 has no rx_sk, so protocol and reason sit 8 bytes earlier
 * than on 6.12; before 5.17 there is no reason at all), which is why no
 * offset is written down anywhere in this file.
 */
enum skb_drop_reason { __TCPLENS_SKB_DROP_REASON_UNUSED };

struct trace_event_raw_kfree_skb {
	void *skbaddr;
	void *location;
	unsigned short protocol; /* skb->protocol in host order */
	enum skb_drop_reason reason;
} __attribute__((preserve_access_index));

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6

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

SEC("tracepoint/skb/kfree_skb")
int kfree_skb(struct trace_event_raw_kfree_skb *ctx)
{
	__u16 protocol = ctx->protocol;
	if (protocol != ETH_P_IP && protocol != ETH_P_IPV6)
		return 0;
	__u32 reason = 0;
	int has_reason = bpf_core_field_exists(ctx->reason);
	if (has_reason) {
		reason = ctx->reason;
		if (skipped(reason))
			return 0;
	}

	const struct sk_buff *skb = ctx->skbaddr;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!head || nh == 0xffff)
		return 0;

	struct sock_addrs pkt = {};
	__u32 th_off;
	if (protocol == ETH_P_IP) {
		struct ipv4_hdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return 0;
		__u8 ihl = ip.version_ihl & 0x0f;
		if ((ip.version_ihl >> 4) != 4 || ihl < 5 || ip.protocol != IPPROTO_TCP)
			return 0;
		if (bpf_ntohs(ip.frag_off) & IPV4_FRAG_OFFSET_MASK)
			return 0; /* a later fragment: no TCP header */
		pkt.family = 4;
		__builtin_memcpy(pkt.saddr, &ip.saddr, 4);
		__builtin_memcpy(pkt.daddr, &ip.daddr, 4);
		th_off = nh + ihl * 4;
	} else {
		struct ipv6_hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return 0;
		/* TCP right after the fixed header only: extension headers are
		 * not walked here. */
		if ((ip6.vtc_flow[0] >> 4) != 6 || ip6.nexthdr != IPPROTO_TCP)
			return 0;
		pkt.family = 6;
		__builtin_memcpy(pkt.saddr, ip6.saddr, 16);
		__builtin_memcpy(pkt.daddr, ip6.daddr, 16);
		th_off = nh + sizeof(ip6);
	}
	struct tcp_hdr th;
	if (bpf_probe_read_kernel(&th, sizeof(th), head + th_off))
		return 0;

	/* Which end is this host's: a packet that arrived has skb_iif set. */
	int in = BPF_CORE_READ(skb, skb_iif) != 0;
	struct sock_addrs a = {};
	a.family = pkt.family;
	if (in) {
		__builtin_memcpy(a.saddr, pkt.daddr, 16);
		__builtin_memcpy(a.daddr, pkt.saddr, 16);
		a.sport = bpf_ntohs(th.dest);
		a.dport = bpf_ntohs(th.source);
	} else {
		__builtin_memcpy(a.saddr, pkt.saddr, 16);
		__builtin_memcpy(a.daddr, pkt.daddr, 16);
		a.sport = bpf_ntohs(th.source);
		a.dport = bpf_ntohs(th.dest);
	}
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
	e->location = (__u64)ctx->location;
	e->tcp_flags = th.flags;
	e->direction = in ? DROP_IN : DROP_OUT;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	submit_event(e);
	return 0;
}
