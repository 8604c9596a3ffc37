//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens retrans: the kernel's TCP retransmissions, from the tracepoints
 * tcp:tcp_retransmit_skb and tcp:tcp_retransmit_synack, one ring buffer
 * record each, with the segments the retransmitted skb carried as the
 * kernel counts them (tcp_skb_pcount) and its error, so user space can add
 * up exactly what the kernel adds to tcp_sock.total_retrans.
 */
#include "sock_read.h"
#include "headers/skbuff.h"
#include "headers/tracepoints.h"

#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

#define RETRANS_KIND_DATA 0
#define RETRANS_KIND_SYNACK 1

/* One retransmission. addrs.saddr/sport are always this host's end. */
struct retrans_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	struct sock_addrs addrs;
	__s32 err;   /* 0: sent (and counted in total_retrans) */
	__u32 pid;   /* on-CPU process; 0 for timer-driven retransmits */
	__u32 total_retrans; /* the socket's counter after this one; 0 for SYN-ACKs */
	__u16 segs;    /* segments the kernel added to total_retrans for this one */
	__u16 skb_segs; /* tcp_skb_pcount(skb): segments the skb carried; 1 for a SYN-ACK */
	__u8 state;    /* TCP state (include/net/tcp_states.h) */
	__u8 kind;     /* RETRANS_KIND_* */
	/* on-CPU task: for a timer-driven retransmit that is whoever ran the
	 * timer (ksoftirqd/N, swapper/N), not the socket's owner */
	char comm[16];
	__u8 pad[6];
};

/*
 * What the kernel adds to tp->total_retrans for one retransmission is not
 * knowable from err alone: __tcp_retransmit_skb counts tcp_skb_pcount(skb)
 * just before handing the skb to tcp_transmit_skb, so an error from the
 * device or the neighbour layer (NET_XMIT_DROP as 1, -ENOBUFS, ...) comes
 * after the count, while -EBUSY, -EAGAIN, -ENOMEM, ... return before it, and
 * some errnos can come from either side. So the program reads the counter
 * itself (CO-RE) and reports its growth since the socket's previous
 * retransmission; only for a socket's first one does it fall back to err.
 */
struct retrans_seen {
	__u32 total_retrans;
	__u16 sport, dport; /* tell a reused socket address apart */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* struct sock * */
	__type(value, struct retrans_seen);
} retrans_seen SEC(".maps");

#define EBUSY 16
#define EAGAIN 11
#define ENOMEM 12
#define EINVAL 22
#define EHOSTUNREACH 113

/* Errors __tcp_retransmit_skb returns before it counts the segments. */
static __always_inline int failed_before_count(int err)
{
	return err == -EBUSY || err == -EAGAIN || err == -ENOMEM || err == -EINVAL || err == -EHOSTUNREACH;
}

/* Keeps the type in BTF for bpf2go -type. */
const struct retrans_event *unused_retrans_event __attribute__((unused));

static __always_inline void submit(const struct sock_addrs *a, int err, __u32 total, __u16 segs,
				   __u16 skb_segs, __u8 state, __u8 kind)
{
	struct retrans_event *e = reserve_event(sizeof(*e));
	if (!e)
		return;
	e->ts_ns = bpf_ktime_get_ns();
	e->addrs = *a;
	e->err = err;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->total_retrans = total;
	e->segs = segs;
	e->skb_segs = skb_segs;
	e->state = state;
	e->kind = kind;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	submit_event(e);
}

/*
 * Raw tracepoints (the kernel's own arguments), not the classic ones: the
 * kernel skips a classic tracepoint program whenever any such program
 * already runs on its CPU (bpf_prog_active), and retransmissions come from
 * timers and ACKs in softirqs, which interrupt the process-context runs of
 * other programs (a sender's sock_send_length) all the time: a flap of
 * 2,872 retransmitted segments once lost 33 of them that way. A raw
 * tracepoint program is skipped only when it is itself re-entered on its
 * CPU; a skipped retransmission's segments are still counted at the
 * socket's next one, from total_retrans.
 *
 * tcp:tcp_retransmit_skb passes (sk, skb) up to 6.12 and (sk, skb, err)
 * from 6.13. Whether it passes err is asked of the classic record's type
 * with CO-RE: an argument a kernel does not pass may not be read (the
 * attach fails), so on older kernels that read is dead code.
 */
SEC("raw_tracepoint/tcp_retransmit_skb")
int retransmit_skb(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	const struct sk_buff *skb = (const void *)ctx->args[1];
	struct sock_addrs a = {};
	int err = 0;

	if (!sk)
		return 0;
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb) &&
	    bpf_core_field_exists(((struct trace_event_raw_tcp_retransmit_skb *)0)->err))
		err = ctx->args[2];
	sock_addrs_of(&a, sk);
	if (!filter_match(&a))
		return 0;
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);

	/* tcp_skb_pcount(skb): TCP_SKB_CB(skb)->tcp_gso_segs */
	__u16 skb_segs = 0;
	if (skb) {
		const struct tcp_skb_cb *cb = (const void *)&skb->cb[0];
		skb_segs = BPF_CORE_READ(cb, tcp_gso_segs);
	}

	__u64 key = (__u64)sk;
	const struct tcp_sock *tcp = (const void *)sk;
	__u32 total = BPF_CORE_READ(tcp, total_retrans);
	__u16 segs;
	struct retrans_seen *seen = bpf_map_lookup_elem(&retrans_seen, &key);
	if (seen && ((seen->sport == a.sport && seen->dport == a.dport) || (!seen->sport && !seen->dport)) &&
	    total >= seen->total_retrans)
		segs = total - seen->total_retrans;
	else
		segs = failed_before_count(err) ? 0 : skb_segs;
	struct retrans_seen now = { .total_retrans = total, .sport = a.sport, .dport = a.dport };
	if (bpf_map_update_elem(&retrans_seen, &key, &now, BPF_ANY))
		count_lost(LOST_MAP_FULL);

	submit(&a, err, total, segs, skb_segs, state, RETRANS_KIND_DATA);
	return 0;
}

/*
 * tcp:tcp_retransmit_synack passes (sk, req): the listener and the request
 * socket, whose struct sock_common holds the connection's addresses (its
 * local port in skc_num: a request socket has no inet_sport).
 */
SEC("raw_tracepoint/tcp_retransmit_synack")
int retransmit_synack(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *req = (const void *)ctx->args[1];
	struct sock_addrs a = {};

	if (!req)
		return 0;
	sock_addrs_of(&a, req);
	a.sport = BPF_CORE_READ(req, __sk_common.skc_num);
	if (!filter_match(&a))
		return 0;
	/* The tracepoint fires only for a SYN-ACK that was sent; the request
	 * socket it belongs to is in NEW_SYN_RECV by definition. */
	submit(&a, 0, 0, 1, 1, TCP_NEW_SYN_RECV, RETRANS_KIND_SYNACK);
	return 0;
}

/*
 * A socket's first retransmission needs a baseline for total_retrans, and
 * err does not give one before 6.13: there tcp:tcp_retransmit_skb fires only
 * for a retransmission that was sent, while __tcp_retransmit_skb counts the
 * segments before a device or neighbour error (a link that is down), so a
 * socket whose first attempts failed would lose those from its count. So
 * the baseline is taken where the socket is born: 0 at connect(), and for a
 * listener's child at SYN_RECV -> ESTABLISHED, when total_retrans holds the
 * SYN-ACK retransmissions (reported as kind synack) and no data has been
 * retransmitted yet. Sockets older than tcplens keep the err fallback.
 */
#define TCP_ESTABLISHED_ 1
#define TCP_SYN_SENT_ 2
#define TCP_SYN_RECV_ 3
#define TCP_CLOSE_ 7

/* sock:inet_sock_set_state passes (sk, oldstate, newstate). */
SEC("raw_tracepoint/inet_sock_set_state")
int socket_state(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	int oldstate = ctx->args[1], newstate = ctx->args[2];

	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;

	if (newstate == TCP_CLOSE_) {
		bpf_map_delete_elem(&retrans_seen, &key);
		return 0;
	}
	/* Ports 0: not known yet (connect() picks the local port after this);
	 * retransmit_skb accepts such a baseline for any ports. */
	struct retrans_seen born = {};
	if (newstate == TCP_SYN_SENT_) {
		bpf_map_update_elem(&retrans_seen, &key, &born, BPF_ANY);
	} else if (oldstate == TCP_SYN_RECV_ && newstate == TCP_ESTABLISHED_) {
		const struct tcp_sock *tcp = (const void *)sk;
		born.total_retrans = BPF_CORE_READ(tcp, total_retrans);
		bpf_map_update_elem(&retrans_seen, &key, &born, BPF_NOEXIST);
	}
	return 0;
}
