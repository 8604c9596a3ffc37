//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens rtt: congestion window, RTT and socket internals over time, from
 * the raw tracepoint tcp_probe (args: struct sock *sk, struct sk_buff *skb),
 * which the kernel hits for every segment a connection receives: far too
 * often to stream. So it samples here: at most one record per connection
 * every sample_ns, plus one for each loss event (the connection entered
 * fast recovery or RTO recovery), each ssthresh change, and each cwnd
 * move of cwnd_change_pct percent (25 by default) since the connection's
 * last record. A bulk transfer then makes a few records per sample
 * period, not one per ACK (cwnd changes on nearly every ACK in slow start
 * and under cubic, which made 8,000 records/s of one connection).
 *
 * tcp_probe fires as the segment arrives, before TCP processes it (start
 * of tcp_rcv_established), so a record shows the state just before that
 * segment's ACK was taken into account.
 */
#include "sock_common.h"
#include "sock_read.h"
#include "headers/tracepoints.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

/* --sample: the least time between two periodic records of a connection. */
volatile const __u64 sample_ns = 100000000;

/*
 * --cwnd-change: a cwnd change makes a record only once cwnd has moved by
 * at least this many percent from the last record's (0: every change).
 * Slow drifts add up, since the reference is the last record.
 */
volatile const __u32 cwnd_change_pct = 25;

static __always_inline int cwnd_moved(__u32 cwnd, __u32 last)
{
	if (cwnd == last)
		return 0;
	if (cwnd_change_pct == 0)
		return 1;
	__u64 delta = cwnd > last ? cwnd - last : last - cwnd;
	return delta * 100 >= (__u64)last * cwnd_change_pct;
}

#define RTT_REASON_PERIODIC 1 /* sample_ns passed since the last one (or first) */
#define RTT_REASON_CWND 2     /* snd_cwnd changed */
#define RTT_REASON_SSTHRESH 4 /* snd_ssthresh changed */
#define RTT_REASON_LOSS 8     /* entered TCP_CA_Recovery or TCP_CA_Loss */

#define TCP_CA_RECOVERY 3
/* A loss event: the congestion state went from Open/Disorder/CWR to
 * Recovery or Loss since the previous segment. */
static __always_inline int entered_loss(__u8 ca_state, __u8 prev)
{
	return ca_state >= TCP_CA_RECOVERY && prev < TCP_CA_RECOVERY;
}

/*
 * Per connection: what its last record said, and its addresses read once.
 * tcp_probe runs for every segment received, so the common case (no record
 * due) must cost one map lookup and two reads, not a dozen probe reads.
 */
struct rtt_last {
	__u64 periodic_ns; /* last periodic record */
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u8 excluded;     /* the filter rejected this connection */
	__u8 ca_state;     /* icsk_ca_state at the previous segment, record or not */
	__u8 pad[6];
	struct sock_addrs addrs;
};

/* Keyed by the struct sock pointer: a reused pointer inherits at most a
 * delayed first record; LRU bounds the map whatever the connection count. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct rtt_last);
} last SEC(".maps");

/* One sample of a connection. addrs.saddr/sport are this host's end. */
struct rtt_event {
	__u64 ts_ns; /* bpf_ktime_get_ns */
	struct sock_addrs addrs;
	__u64 bytes_acked;
	__u64 bytes_received;
	__u32 snd_cwnd;     /* segments */
	__u32 snd_ssthresh; /* segments */
	__u32 srtt_us;      /* tcpi_rtt: srtt_us >> 3 */
	__u32 rttvar_us;    /* tcpi_rttvar: mdev_us >> 2 */
	__u32 snd_wnd;
	__u32 rcv_wnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 total_retrans;
	__s32 wmem_queued; /* sk_wmem_queued */
	__s32 rmem_alloc;  /* sk_rmem_alloc */
	__s32 sndbuf;
	__s32 rcvbuf;
	__u8 state;
	__u8 reason; /* RTT_REASON_* */
	__u8 pad[2];
};

/* Keeps the type in BTF for bpf2go -type. */
const struct rtt_event *unused_rtt_event __attribute__((unused));

SEC("raw_tracepoint/tcp_probe")
int tcp_probe(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	const struct tcp_sock___tl *tp = (const void *)ctx->args[0];
	__u64 key = (__u64)sk;
	__u8 reason = 0;

	struct rtt_last *l = bpf_map_lookup_elem(&last, &key);
	if (l && l->excluded)
		return 0;

	__u64 now = bpf_ktime_get_ns();
	__u32 cwnd = BPF_CORE_READ(tp, snd_cwnd);
	__u32 ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	__u8 ca_state = BPF_CORE_READ_BITFIELD_PROBED(&tp->inet_conn, icsk_ca_state);

	if (!l) {
		/* First segment seen: the 4-tuple of an established socket no
		 * longer changes, so read it and apply the filter once. The
		 * filter also makes an IPv4 peer of a dual-stack socket
		 * (::ffff:a.b.c.d) IPv4, before the addresses are cached. */
		struct rtt_last fresh = {.periodic_ns = now, .snd_cwnd = cwnd, .snd_ssthresh = ssthresh,
					 .ca_state = ca_state};
		sock_addrs_of(&fresh.addrs, sk);
		fresh.excluded = !filter_match(&fresh.addrs);
		if (bpf_map_update_elem(&last, &key, &fresh, BPF_ANY))
			count_lost(LOST_MAP_FULL);
		if (fresh.excluded)
			return 0;
		l = bpf_map_lookup_elem(&last, &key);
		if (!l)
			return 0;
		reason = RTT_REASON_PERIODIC;
	} else {
		if (now - l->periodic_ns >= sample_ns) {
			reason |= RTT_REASON_PERIODIC;
			l->periodic_ns = now;
		}
		if (cwnd_moved(cwnd, l->snd_cwnd))
			reason |= RTT_REASON_CWND;
		if (ssthresh != l->snd_ssthresh)
			reason |= RTT_REASON_SSTHRESH;
		if (entered_loss(ca_state, l->ca_state))
			reason |= RTT_REASON_LOSS;
		l->ca_state = ca_state;
		if (!reason)
			return 0;
		/* Only a record moves the reference, so small steps add up. */
		l->snd_cwnd = cwnd;
		l->snd_ssthresh = ssthresh;
	}

	struct rtt_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->ts_ns = now;
	e->addrs = l->addrs;
	e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
	e->bytes_received = BPF_CORE_READ(tp, bytes_received);
	e->snd_cwnd = cwnd;
	e->snd_ssthresh = ssthresh;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->rttvar_us = BPF_CORE_READ(tp, mdev_us) >> 2;
	e->snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	e->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	e->packets_out = BPF_CORE_READ(tp, packets_out);
	e->retrans_out = BPF_CORE_READ(tp, retrans_out);
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	e->wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	e->rmem_alloc = BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter);
	e->sndbuf = BPF_CORE_READ(sk, sk_sndbuf);
	e->rcvbuf = BPF_CORE_READ(sk, sk_rcvbuf);
	e->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	e->reason = reason;
	__builtin_memset(e->pad, 0, sizeof(e->pad));
	submit_event(e);
	return 0;
}

/*
 * A freed socket's memory can come back as a new connection: forget what
 * the old one cached (addresses, filter verdict) when the kernel frees it.
 * A raw tracepoint, like tcp_probe: a classic one is skipped whenever
 * another tracepoint program runs on the CPU, and a missed destroy would
 * leave a stale verdict for the next socket at that address.
 */
SEC("raw_tracepoint/tcp_destroy_sock")
int tcp_destroy_sock(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0]; /* struct sock * */

	bpf_map_delete_elem(&last, &key);
	return 0;
}
