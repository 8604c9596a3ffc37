//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * tcplens states: TCP state transitions from sock:inet_sock_set_state, with
 * the time spent in the old state, handshake latency, and one lifetime
 * record per connection when it reaches CLOSE (duration, bytes, retransmits
 * read from the socket with CO-RE), like BCC's tcpstates and tcplife.
 *
 * The owning process is known where the kernel runs in its context: at
 * connect (CLOSE -> SYN_SENT) and at the first send or receive
 * (sock:sock_send_length, sock:sock_recv_length). Elsewhere it stays 0.
 *
 * Transitions come from the raw tracepoint (the tracepoint's arguments:
 * struct sock *, oldstate, newstate), not from the classic tracepoint's
 * record. The kernel runs a classic tracepoint program through
 * trace_call_bpf, which skips it whenever any such program already runs on
 * the CPU (bpf_prog_active): a softirq's state change arriving while a
 * process-context run is in progress (an interrupt's exit runs pending
 * softirqs) went unseen, 0.2-10% of lifetimes under 10,000 connections
 * (BENCHMARKS.md). A raw tracepoint program is skipped only when the same
 * program is re-entered on its CPU (per-program prog->active, since 6.1,
 * counted as recursion_misses). That still happens: process context runs
 * set_state, an interrupt arrives, and the softirq's state change finds
 * set_state busy. So a second copy, set_state_backup, is attached after
 * it on the same raw tracepoint and handles exactly the events set_state
 * was skipped for, told apart by claims (below). For a change to be lost
 * both must be busy on the CPU at once, and they never run at the same
 * level (the backup runs after the main one returns; softirqs do not nest
 * into softirqs), so neither can be skipped while the other holds the CPU
 * in the same context.
 */
#include "sock_common.h"
#include "sock_read.h"
#include "headers/tracepoints.h"

#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual BSD/GPL";

DEFINE_EVENT_OUTPUT()

#define EEXIST 17

#define CONN_START_KNOWN 1 /* start_ns is when the socket was born */

/* What is remembered per socket between its transitions. */
struct conn_info {
	__u64 start_ns; /* birth (CLOSE -> SYN_SENT, LISTEN -> SYN_RECV) */
	__u64 state_ns; /* entered the current state; 0: not seen */
	__u64 syn_ns;   /* entered SYN_SENT or SYN_RECV; 0: not seen */
	__u32 pid;      /* 0: not known */
	__u8 state;     /* current state as last seen; 0: not seen */
	__u8 flags;     /* CONN_* */
	__u8 pending;   /* SYN_SENT or SYN_RECV: the birth transition, not yet reported */
	__u8 pad;
	char comm[16];
};

/*
 * A plain hash, not an LRU: an LRU would evict a live socket's entry
 * without a trace, and its next transition would lose its duration and
 * owner unnoticed. Here an entry that cannot be made is counted
 * (LOST_MAP_FULL) and the record still goes out, without what the entry
 * would have told. Entries go at CLOSE, and at tcp_destroy_sock for a
 * socket whose CLOSE this program missed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* struct sock * */
	__type(value, struct conn_info);
} conns SEC(".maps");

#define STATE_KIND_TRANSITION 0
#define STATE_KIND_LIFETIME 1

#define STATE_DURATION_KNOWN 1 /* duration_ns is the time in old_state */
#define STATE_START_KNOWN 2    /* lifetime_ns is from the socket's birth */
#define STATE_HANDSHAKE 4      /* handshake_ns is set */

/* One transition, or one lifetime. addrs.saddr/sport are this host's end. */
struct state_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns */
	struct sock_addrs addrs;
	__u64 duration_ns;  /* transition: in old_state */
	__u64 handshake_ns; /* SYN_SENT/SYN_RECV -> ESTABLISHED */
	__u64 lifetime_ns;  /* lifetime: birth (or first sight, see flags) to CLOSE */
	__u64 bytes_acked;  /* lifetime: tcpi_bytes_acked */
	__u64 bytes_received;
	__u32 total_retrans;
	__u32 pid; /* 0: not known */
	char comm[16];
	__u8 kind;  /* STATE_KIND_* */
	__u8 old_state;
	__u8 new_state;
	__u8 flags; /* STATE_* */
	__u8 pad[4];
};

/* Keeps the type in BTF for bpf2go -type. */
const struct state_event *unused_state_event __attribute__((unused));

static __always_inline struct state_event *new_event(__u64 ts, const struct sock_addrs *a,
						     const struct conn_info *info, __u8 kind)
{
	struct state_event *e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = ts;
	e->addrs = *a;
	e->kind = kind;
	e->pid = info->pid;
	__builtin_memcpy(e->comm, info->comm, sizeof(e->comm));
	return e;
}

/* One state change of sk: the transition records and, at CLOSE, its life. */
static __always_inline void handle_set_state(const struct sock___tl *sk, __u8 oldstate, __u8 newstate)
{
	struct sock_addrs a = {};
	struct conn_info fresh = {};
	struct conn_info *info;
	__u64 now = bpf_ktime_get_ns();

	/* The tracepoint fires for TCP, DCCP and SCTP sockets alike. */
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	const void *skaddr = sk;
	__u64 key = (__u64)skaddr;

	info = bpf_map_lookup_elem(&conns, &key);
	if (!info) {
		/* Born now (connect(), or a listener's child), or older. */
		fresh.start_ns = now;
		if (oldstate == TCP_CLOSE || oldstate == TCP_LISTEN)
			fresh.flags = CONN_START_KNOWN;
		if (newstate != TCP_CLOSE) {
			long err = bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
			if (err && err != -EEXIST) /* EEXIST: another CPU made it */
				count_lost(LOST_MAP_FULL);
		}
		info = bpf_map_lookup_elem(&conns, &key);
		if (!info)
			info = &fresh; /* report without what an entry would remember */
	}

	if ((oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) ||
	    (oldstate == TCP_LISTEN && newstate == TCP_SYN_RECV)) {
		/*
		 * A birth, reported at the socket's next transition, when its
		 * 4-tuple is complete: connect() sets SYN_SENT before it picks
		 * the local port (tcp_v4_connect calls inet_hash_connect
		 * after), and a listener's child enters SYN_RECV, on 6.1 and
		 * 6.12 (measured; not on 6.18), before inet_csk_clone_lock
		 * sets its remote port and address, so the record carries the
		 * listener's (remote port 0). At connect() the process is
		 * current: remember it.
		 */
		if (newstate == TCP_SYN_SENT) {
			__u64 id = bpf_get_current_pid_tgid();
			info->pid = id >> 32;
			bpf_get_current_comm(info->comm, sizeof(info->comm));
		}
		info->start_ns = now;
		info->flags |= CONN_START_KNOWN;
		info->state_ns = now;
		info->syn_ns = now;
		info->state = newstate;
		info->pending = newstate;
		return;
	}

	sock_addrs_of(&a, sk);
	int match = filter_match(&a);
	struct state_event *e;

	if (info->pending) {
		__u8 born = info->pending;
		info->pending = 0;
		if (match && (e = new_event(info->syn_ns, &a, info, STATE_KIND_TRANSITION))) {
			e->old_state = born == TCP_SYN_SENT ? TCP_CLOSE : TCP_LISTEN;
			e->new_state = born;
			submit_event(e);
		}
	}

	if (match && (e = new_event(now, &a, info, STATE_KIND_TRANSITION))) {
		e->old_state = oldstate;
		e->new_state = newstate;
		if (info->state_ns && info->state == oldstate) {
			e->duration_ns = now - info->state_ns;
			e->flags |= STATE_DURATION_KNOWN;
		}
		if (newstate == TCP_ESTABLISHED && info->syn_ns &&
		    (oldstate == TCP_SYN_SENT || oldstate == TCP_SYN_RECV)) {
			e->handshake_ns = now - info->syn_ns;
			e->flags |= STATE_HANDSHAKE;
		}
		submit_event(e);
	}

	if (newstate == TCP_SYN_RECV || newstate == TCP_SYN_SENT)
		info->syn_ns = now;
	info->state_ns = now;
	info->state = newstate;

	if (newstate != TCP_CLOSE)
		return;
	/*
	 * A full socket reaches CLOSE once; report its life unless it never
	 * was a connection (a listener) or is not a full socket.
	 */
	if (match && oldstate != TCP_LISTEN && oldstate != TCP_TIME_WAIT && oldstate != TCP_NEW_SYN_RECV &&
	    (e = new_event(now, &a, info, STATE_KIND_LIFETIME))) {
		const struct tcp_sock___tl *tp = skaddr;
		e->old_state = oldstate;
		e->new_state = newstate;
		e->bytes_acked = BPF_CORE_READ(tp, bytes_acked);
		e->bytes_received = BPF_CORE_READ(tp, bytes_received);
		e->total_retrans = BPF_CORE_READ(tp, total_retrans);
		e->lifetime_ns = now - info->start_ns;
		if (info->flags & CONN_START_KNOWN)
			e->flags |= STATE_START_KNOWN;
		submit_event(e);
	}
	bpf_map_delete_elem(&conns, &key);
}


/*
 * Which events set_state handled, per CPU, so that set_state_backup
 * handles the others. set_state claims each event it runs for as it
 * starts; the backup, which the tracepoint calls next for the same event,
 * finds the claim and removes it, or finds none, because the kernel
 * skipped set_state (it was busy on this CPU in an outer context), and
 * handles the event itself. A claim names the socket and the transition:
 * two events pending on one CPU at once (one per nesting level) never
 * share both. A claim whose backup run was skipped (the backup was busy in
 * an outer context) would stay behind: the outer backup run drops every
 * claim made while it ran, and a new claim takes the oldest slot when all
 * are taken.
 */
#define CLAIM_SLOTS 8

struct claims {
	__u64 seq;              /* claims made on this CPU so far */
	__u64 key[CLAIM_SLOTS]; /* claim_key(); 0: free */
	__u64 at[CLAIM_SLOTS];  /* seq when claimed */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct claims);
} claims SEC(".maps");

/* Kernel pointers keep their top 16 bits the same: the states go there. */
static __always_inline __u64 claim_key(__u64 sk, __u8 oldstate, __u8 newstate)
{
	return sk ^ ((__u64)oldstate << 48) ^ ((__u64)newstate << 56);
}

SEC("raw_tracepoint/inet_sock_set_state")
int set_state(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	__u8 oldstate = ctx->args[1], newstate = ctx->args[2];
	__u32 zero = 0;
	struct claims *c = bpf_map_lookup_elem(&claims, &zero);

	if (c) {
		__u32 slot = 0;
		__u64 oldest = ~0ULL;
#pragma unroll
		for (int i = 0; i < CLAIM_SLOTS; i++) {
			__u64 at = c->key[i] ? c->at[i] : 0; /* a free slot first */
			if (at < oldest) {
				oldest = at;
				slot = i;
			}
		}
		slot &= CLAIM_SLOTS - 1;
		c->at[slot] = ++c->seq;
		c->key[slot] = claim_key((__u64)sk, oldstate, newstate);
	}
	handle_set_state(sk, oldstate, newstate);
	return 0;
}

/* Attached after set_state: see the top of this file and struct claims. */
SEC("raw_tracepoint/inet_sock_set_state")
int set_state_backup(struct bpf_raw_tracepoint_args *ctx)
{
	const struct sock___tl *sk = (const void *)ctx->args[0];
	__u8 oldstate = ctx->args[1], newstate = ctx->args[2];
	__u32 zero = 0;
	struct claims *c = bpf_map_lookup_elem(&claims, &zero);

	if (!c)
		return 0;
	__u64 seq0 = c->seq; /* first: claims after this are nested ones */
	__u64 key = claim_key((__u64)sk, oldstate, newstate);
	int claimed = 0;
#pragma unroll
	for (int i = 0; i < CLAIM_SLOTS; i++) {
		if (c->key[i] == key) {
			c->key[i] = 0;
			claimed = 1;
			break;
		}
	}
	if (!claimed) {
		handle_set_state(sk, oldstate, newstate);
		count_lost(LOST_RECOVERED);
	}
	/*
	 * Claims made while this ran are of events nested into it, whose own
	 * backup run the kernel skipped since this one was busy: drop them.
	 */
#pragma unroll
	for (int i = 0; i < CLAIM_SLOTS; i++)
		if (c->key[i] && c->at[i] > seq0)
			c->key[i] = 0;
	return 0;
}

/*
 * The first send or receive names the process of a socket whose owner is
 * not known yet (accepted connections, or ones older than tcplens). These
 * tracepoints fire in the sender's or receiver's own context.
 */
static __always_inline int note_owner(const struct sock___tl *sk)
{
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u64 key = (__u64)sk;
	struct conn_info *info = bpf_map_lookup_elem(&conns, &key);
	if (info) {
		if (info->pid)
			return 0;
		info->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(info->comm, sizeof(info->comm));
		return 0;
	}
	/* Older than tcplens: remember the owner for its lifetime record. */
	struct conn_info fresh = {};
	fresh.start_ns = bpf_ktime_get_ns();
	fresh.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(fresh.comm, sizeof(fresh.comm));
	long err = bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
	if (err && err != -EEXIST)
		count_lost(LOST_MAP_FULL);
	return 0;
}

/*
 * Absent before 6.3: the loader then leaves these two programs out. Raw
 * tracepoints (arguments: sk, ret, flags), like the rest: a classic
 * tracepoint program running here, in the sender's context, on every send,
 * made the kernel skip every other classic program (bpf_prog_active) that
 * a softirq ran meanwhile on the CPU.
 */
SEC("raw_tracepoint/sock_send_length")
int send_length(struct bpf_raw_tracepoint_args *ctx) { return note_owner((const void *)ctx->args[0]); }

SEC("raw_tracepoint/sock_recv_length")
int recv_length(struct bpf_raw_tracepoint_args *ctx) { return note_owner((const void *)ctx->args[0]); }

/*
 * The kernel frees the socket: forget it, in case this program missed its
 * CLOSE (a run skipped for recursion), so the map does not fill up with
 * dead sockets. A raw tracepoint too, so that it is not skipped whenever
 * another tracepoint program runs on the CPU.
 */
SEC("raw_tracepoint/tcp_destroy_sock")
int destroy_sock(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0]; /* struct sock * */

	/* An entry still here means its CLOSE (deleting it) went unseen. */
	if (bpf_map_delete_elem(&conns, &key) == 0)
		count_lost(LOST_UNSEEN_CLOSE);
	return 0;
}
