/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel's own tracepoint record types (struct trace_event_raw_<class>,
 * as its BTF names them), relocated with CO-RE: a program reads
 * ctx->field and the loader rewrites the offset to where this kernel puts
 * it. Only the fields the programs read are declared; their order and
 * offsets here do not matter. A record whose layout or class differs
 * between kernels is told apart with bpf_core_type_exists and
 * bpf_core_field_exists, never by offset:
 *
 * - tcp:tcp_retransmit_skb is of class tcp_event_sk_skb up to 6.12 and has
 *   its own class, with `err`, from 6.13.
 * - tcp:tcp_send_reset is of class tcp_event_sk_skb (addresses from the
 *   socket, no reason) in 6.1, and has its own class from 6.10 with the
 *   reason (enum sk_rst_reason) and struct sockaddr_in/in6 addresses.
 * - sock:sock_send_length/sock_recv_length (class sock_msg_length) appear
 *   in 6.3; the loader leaves their programs out where they are missing.
 *
 * Scalars are read straight from ctx. Arrays are copied with
 * bpf_probe_read_kernel from &ctx->field: a copy straight from the context
 * would compile to a load through a moved context pointer, which the
 * verifier refuses.
 */
#pragma once

#include <linux/types.h>

#define TP_ADDR_FIELDS        \
	__u16 sport;          \
	__u16 dport;          \
	__u16 family;         \
	__u8 saddr[4];        \
	__u8 daddr[4];        \
	__u8 saddr_v6[16];    \
	__u8 daddr_v6[16];

/* sock:inet_sock_set_state */
struct trace_event_raw_inet_sock_set_state {
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 protocol;
	TP_ADDR_FIELDS
} __attribute__((preserve_access_index));

/* sock:sock_send_length, sock:sock_recv_length (6.3+) */
struct trace_event_raw_sock_msg_length {
	void *sk;
	__u16 protocol;
} __attribute__((preserve_access_index));

/* tcp:tcp_retransmit_skb up to 6.12, tcp:tcp_send_reset in 6.1-6.9 */
struct trace_event_raw_tcp_event_sk_skb {
	const void *skbaddr;
	const void *skaddr;
	int state;
	TP_ADDR_FIELDS
} __attribute__((preserve_access_index));

/* tcp:tcp_retransmit_skb from 6.13 */
struct trace_event_raw_tcp_retransmit_skb {
	const void *skbaddr;
	const void *skaddr;
	int state;
	TP_ADDR_FIELDS
	int err;
} __attribute__((preserve_access_index));

/* tcp:tcp_retransmit_synack */
struct trace_event_raw_tcp_retransmit_synack {
	const void *skaddr;
	TP_ADDR_FIELDS
} __attribute__((preserve_access_index));

/*
 * The reason's type must be an enum for CO-RE to match the field; its
 * values are named at run time from the kernel's BTF, not from here.
 */
enum sk_rst_reason { SK_RST_REASON_NOT_SPECIFIED___tl };

/* tcp:tcp_send_reset from 6.10 */
struct trace_event_raw_tcp_send_reset {
	const void *skaddr;
	int state;
	enum sk_rst_reason reason;
	__u8 saddr[28]; /* struct sockaddr_in or sockaddr_in6: this host's end */
	__u8 daddr[28];
} __attribute__((preserve_access_index));

/* tcp:tcp_receive_reset, tcp:tcp_destroy_sock */
struct trace_event_raw_tcp_event_sk {
	const void *skaddr;
	TP_ADDR_FIELDS
} __attribute__((preserve_access_index));

/*
 * READ_TP_ADDRS fills struct sock_addrs *a (bpf/sock_common.h) from a
 * record with TP_ADDR_FIELDS: the ports and family straight from ctx, the
 * family's own address pair copied out of it (see above). It evaluates to
 * 0, or to the error of a copy.
 */
#define READ_TP_ADDRS(a, ctx)                                                         \
	({                                                                            \
		__u8 s_[16] = {}, d_[16] = {};                                        \
		__u16 family_ = (ctx)->family;                                        \
		long err_;                                                            \
		if (family_ == AF_INET6) {                                            \
			err_ = bpf_probe_read_kernel(s_, 16, &(ctx)->saddr_v6);       \
			err_ = err_ ?: bpf_probe_read_kernel(d_, 16, &(ctx)->daddr_v6); \
		} else {                                                              \
			err_ = bpf_probe_read_kernel(s_, 4, &(ctx)->saddr);           \
			err_ = err_ ?: bpf_probe_read_kernel(d_, 4, &(ctx)->daddr);   \
		}                                                                     \
		addrs_from_tp((a), family_, (ctx)->sport, (ctx)->dport, s_, d_, s_, d_); \
		err_;                                                                 \
	})
