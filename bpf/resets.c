//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens resets: TCP resets this host sends (tcp:tcp_send_reset, with the
 * kernel's reason from 6.10) and receives (tcp:tcp_receive_reset), one ring
 * buffer record each.
 */
#include "skb_read.h"
#include "sock_read.h"
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
 * Raw tracepoints (the kernel's own arguments), not the classic ones: the
 * kernel skips a classic tracepoint program whenever any such program
 * already runs on its CPU (bpf_prog_active), so a reset sent from a
 * softirq that interrupted another program's run went unseen. A raw
 * tracepoint program is skipped only when it is itself re-entered there.
 *
 * tcp:tcp_send_reset passes (sk, skb) in 6.1-6.9, where it fires only for
 * a reset with a full socket, and (sk, skb, reason) from 6.10, where sk may
 * be NULL (no socket: the reset answers skb) or a time-wait or request
 * socket; then the addresses come from the packet, turned around, as the
 * classic record takes them.
 * Whether the kernel passes the reason is asked of the classic record's
 * type with CO-RE: an argument the kernel does not pass may not be read
 * (the attach fails), so on older kernels that read is dead code.
 */
SEC("raw_tracepoint/tcp_send_reset")
int send_reset(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	const struct sk_buff *skb = (const void *)ctx->args[1];
	struct sock_addrs a = {};
	__u32 reason = 0;
	__u8 reason_known = 0, state = 0;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_send_reset) &&
	    bpf_core_field_exists(((struct trace_event_raw_tcp_send_reset *)0)->reason)) {
		reason = ctx->args[2];
		reason_known = 1;
	}
	if (sk)
		state = BPF_CORE_READ(sk, __sk_common.skc_state);
	/* Where the classic record takes the addresses from, so do we: a
	 * full socket, else the packet (a time-wait or request socket has no
	 * inet_sport), else the socket's common part (skc_num: local port). */
	struct sock_addrs pkt = {};
	struct tcp_hdr th;
	if (sk && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV) {
		sock_addrs_of(&a, sk);
	} else if (skb && !skb_tcp_packet(skb, &pkt, &th)) {
		turn_around(&a, &pkt);
	} else if (sk) {
		sock_addrs_of(&a, sk);
		a.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	} else {
		return 0;
	}
	if (!filter_match(&a))
		return 0;
	submit(&a, reason, reason_known, state, RESET_SENT, sk != 0);
	return 0;
}

/* tcp:tcp_receive_reset passes (sk), a full socket. */
SEC("raw_tracepoint/tcp_receive_reset")
int receive_reset(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	struct sock_addrs a = {};

	if (!sk)
		return 0;
	sock_addrs_of(&a, sk);
	if (!filter_match(&a))
		return 0;
	submit(&a, 0, 0, BPF_CORE_READ(sk, __sk_common.skc_state), RESET_RECEIVED, 1);
	return 0;
}
