//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens resets: TCP resets this host sends (tcp:tcp_send_reset, with the
 * kernel's reason) and receives (tcp:tcp_receive_reset), one ring buffer
 * record each.
 */
#include "sock_common.h"
#include "headers/skbuff.h"
#include "headers/tracepoints.h"

#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

#define RESET_SENT 0
#define RESET_RECEIVED 1

/* One reset. addrs.saddr/sport are always this host's end. */
struct reset_event {
	__u64 ts_ns;
	struct sock_addrs addrs;
	__u32 reason;   /* enum sk_rst_reason, sent resets only */
	__u8 reason_known; /* the kernel gives the reason (6.10+) */
	__u32 pid;
	__u8 state;     /* TCP state; 0 when the kernel had no socket */
	__u8 direction; /* RESET_* */
	__u8 has_socket;
	__u8 pad[4];
};

const struct reset_event *unused_reset_event __attribute__((unused));

static __always_inline void submit(const struct sock_addrs *a, __u32 reason, __u8 reason_known, __u8 state,
				   __u8 direction, __u8 has_socket)
{
	struct reset_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->addrs = *a;
	e->reason = reason;
	e->reason_known = reason_known;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->state = state;
	e->direction = direction;
	e->has_socket = has_socket;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	submit_event(e);
}

/*
 * The tracepoint stores struct sockaddr_in / sockaddr_in6 in 28 bytes:
 * family at 0, port (network order) at 2, the IPv4 address at 4 and the
 * IPv6 address at 8. The kernel fills them from the socket when it has one,
 * and else from the packet that caused the reset, turned around: either
 * way, saddr is this host's end.
 */
static __always_inline int addrs_from_sockaddrs(struct sock_addrs *a, const __u8 *local, const __u8 *remote)
{
	__u16 family, lport, rport;

	__builtin_memcpy(&family, local, 2);
	__builtin_memcpy(&lport, local + 2, 2);
	__builtin_memcpy(&rport, remote + 2, 2);
	a->sport = bpf_ntohs(lport);
	a->dport = bpf_ntohs(rport);
	if (family == AF_INET6) {
		a->family = 6;
		__builtin_memcpy(a->saddr, local + 8, 16);
		__builtin_memcpy(a->daddr, remote + 8, 16);
		return 0;
	}
	if (family == AF_INET) {
		a->family = 4;
		__builtin_memcpy(a->saddr, local + 4, 4);
		__builtin_memcpy(a->daddr, remote + 4, 4);
		return 0;
	}
	return -1;
}

SEC("tracepoint/tcp/tcp_send_reset")
int send_reset(void *raw_ctx)
{
	struct sock_addrs a = {};
	__u32 reason = 0;
	__u8 reason_known = 0, state;
	const void *skaddr;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_send_reset)) {
		/* 6.10+: its own record, with sockaddrs and (mostly) a reason */
		struct trace_event_raw_tcp_send_reset *ctx = raw_ctx;
		__u8 local[28], remote[28];
		if (bpf_probe_read_kernel(local, sizeof(local), &ctx->saddr) ||
		    bpf_probe_read_kernel(remote, sizeof(remote), &ctx->daddr))
			return 0;
		if (addrs_from_sockaddrs(&a, local, remote))
			return 0;
		if (bpf_core_field_exists(ctx->reason)) {
			reason = ctx->reason;
			reason_known = 1;
		}
		skaddr = ctx->skaddr;
		state = ctx->state;
	} else {
		/* 6.1-6.9: tcp_event_sk_skb, only for resets with a socket,
		 * whose addresses it gives; no reason. */
		struct trace_event_raw_tcp_event_sk_skb *ctx = raw_ctx;
		if (READ_TP_ADDRS(&a, ctx))
			return 0;
		skaddr = ctx->skaddr;
		state = ctx->state;
	}
	if (!filter_match(&a))
		return 0;
	submit(&a, reason, reason_known, state, RESET_SENT, skaddr != 0);
	return 0;
}

SEC("tracepoint/tcp/tcp_receive_reset")
int receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	struct sock_addrs a = {};

	if (READ_TP_ADDRS(&a, ctx))
		return 0;
	if (!filter_match(&a))
		return 0;
	__u8 state = 0;
	const struct sock *sk = ctx->skaddr;
	if (sk)
		state = BPF_CORE_READ(sk, __sk_common.skc_state);
	submit(&a, 0, 0, state, RESET_RECEIVED, sk != 0);
	return 0;
}
