//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packet path: TCP flag counts, SYN tracking and SYN drop rules.
 *
 * One handler, three entry points: XDP (tcplens_xdp) and TC ingress
 * (tcplens_tc) for packets received, TC egress (tcplens_tc_egress) for
 * packets sent; TC goes through tcx or a netlink cls_bpf filter. User space
 * loads one copy per interface, each with its own cfg.slot, all sharing the
 * maps, so the per-packet counter lookup is a constant index into a per-CPU
 * array: slot for ingress, MAX_INTERFACES + slot for egress.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "parse.h"
#include "pktfilter.h"
#include "capture.h"
#include "guard.h"
#include "synsig.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define MAX_INTERFACES 64

/* Directions, as the entry points pass them to handle. */
#define DIR_IN 0
#define DIR_OUT 1

struct packet_config {
	__u32 slot;             /* index of this interface's counters */
	__u32 source_threshold; /* SYNs (this CPU, this interval) before a source gets an exact entry */
	__u8 track_syn;         /* fill the SYN tuple and source tables */
	__u8 drop_syn_ports;    /* consult drop_ports for SYNs */
	__u8 pad[2];
};

volatile const struct packet_config cfg = {};

/* Per interface and direction; every packet touches it, so it is per-CPU. */
struct flag_counters {
	__u64 packets;
	__u64 tcp_packets;
	__u64 fin;
	__u64 syn;
	__u64 rst;
	__u64 psh;
	__u64 ack;
	__u64 urg;
	__u64 ece;
	__u64 cwr;
	__u64 syn_fin;
	__u64 syn_rst;
	__u64 null_flags;
	__u64 xmas;
	__u64 malformed;
	__u64 dropped;
	__u64 syn_no_ack; /* connection attempts: SYN without ACK */
	__u64 syn_ack;
	__u64 syn_untracked;        /* syn_no_ack not counted in a tuple entry */
	__u64 syn_untracked_source; /* syn_no_ack not counted in a source entry */
};

/* Addresses as 16 bytes in wire order, IPv4 in the first 4, as the
 * socket path stores them (struct sock_addrs). */
struct syn_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 slot;
	__u8 family;
	__u8 pad;
};

/* Aligned so that the sketch can read the address as 32-bit words (the
 * verifier refuses misaligned stack reads). */
struct syn_source {
	__u8 addr[16];
	__u16 slot;
	__u8 family;
	__u8 pad;
} __attribute__((aligned(4)));

/*
 * Everything kept about one source is in this one entry, so that later
 * stages (a token bucket, port-scan state) add fields here instead of
 * another map lookup per SYN.
 */
struct syn_source_state {
	__u64 syns;    /* SYNs counted since the entry was made (exact) */
	__u64 earlier; /* the sketch's estimate of this CPU's SYNs before that (an upper bound) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * MAX_INTERFACES); /* ingress slots, then egress slots */
	__type(key, __u32);
	__type(value, struct flag_counters);
} counters SEC(".maps");

/*
 * The tuple and source tables are plain hash maps swapped by user space at
 * every report: it puts an empty table in the one-slot outer array, which
 * waits until no program still uses the old one (the kernel does that for
 * map-in-map updates), then reads and empties the old table at leisure. No
 * program writes a table while user space reads it, so every count is
 * exact, and nothing is ever evicted: once a table is full, SYNs that need
 * a new entry are counted as untracked instead, at the cost of one flag
 * test. Sizes are set at load time.
 */
/*
 * Types reached only through an inner map's definition would be emitted as
 * forward declarations, which no loader can size: these anchors put the
 * full types in the object's BTF.
 */
const struct syn_tuple anchor_syn_tuple __attribute__((unused));
const struct syn_source anchor_syn_source __attribute__((unused));
const struct syn_source_state anchor_syn_source_state __attribute__((unused));

struct syn_tuple_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_tuple);
	__type(value, __u64);
};

struct syn_source_table {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_source);
	__type(value, struct syn_source_state);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct syn_tuple_table);
} syn_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct syn_source_table);
} syn_sources SEC(".maps");

/*
 * A count-min sketch of SYNs per source, per CPU, for the current interval
 * (user space zeroes it at each swap). A spoofed flood brings a new source
 * with nearly every SYN; the sketch counts it for a few ns, and only a
 * source that stands out gets an exact entry.
 *
 * Blocked: a source's four counters (one per row) lie in one cache line,
 * chosen by the hash, each row picking one of its 8 cells there by other
 * bits of the hash. One cache miss per SYN instead of four, which is most
 * of what a sketch costs once the TCP stack has run between two SYNs.
 * Cells are 16 bits and saturate; the estimate only decides who gets an
 * exact entry.
 */
#define SKETCH_ROWS 4
#define SKETCH_ROW_CELLS 8                                 /* per row in a line */
#define SKETCH_LINES 256                                   /* 16 KiB */
#define SKETCH_ROW_WIDTH (SKETCH_LINES * SKETCH_ROW_CELLS) /* cells per row */

/* Per CPU, reset by user space at each swap. */
struct syn_cpu_state {
	__u64 syns;         /* SYNs this CPU tracked this interval (the sketch's total) */
	__u32 tuples_full;  /* an insert into this interval's tuple table failed */
	__u32 sources_full; /* same for the source table */
};

/* The state and the sketch in one value: one lookup, and the state's line
 * is the one the sketch's neighbours keep warm. */
struct syn_cpu {
	struct syn_cpu_state state;
	__u8 pad[64 - sizeof(struct syn_cpu_state)];
	__u16 cell[SKETCH_LINES][SKETCH_ROWS * SKETCH_ROW_CELLS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_cpu);
} syn_percpu SEC(".maps");

/* One bit per destination port: drop SYNs to it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 64);
	__type(key, __u32);
	__type(value, __u64);
} drop_ports SEC(".maps");

/*
 * count_tuple adds one SYN to its tuple's entry, making it if there is
 * room. It returns 0 when counted, -1 when the table is full. A flood
 * brings a new tuple with every SYN, and so does ordinary traffic (one SYN
 * per connection): it tries the insert first and looks up only when the
 * entry exists already.
 */
static __always_inline int count_tuple(struct syn_tuple *key, __u32 *full)
{
	__u32 zero = 0;
	__u64 one = 1, *val;
	void *table;

	if (*full)
		return -1;
	table = bpf_map_lookup_elem(&syn_tuples, &zero);
	if (!table)
		return -1;
	long err = bpf_map_update_elem(table, key, &one, BPF_NOEXIST);
	if (err == 0)
		return 0;
	val = bpf_map_lookup_elem(table, key);
	if (val) {
		__sync_fetch_and_add(val, 1);
		return 0;
	}
	*full = 1;
	return -1;
}

/*
 * sketch_add counts a SYN of src in every row and returns the estimate:
 * the smallest of the row counts, never below the truth (unless a cell
 * saturated). The hash is multiply-shift over the address's two halves:
 * two independent multiplies instead of a serial chain of mixing rounds.
 */
static __always_inline __u32 sketch_add(struct syn_cpu *sk, const struct syn_source *src)
{
	const __u32 *w = (const __u32 *)src->addr;
	__u64 lo = (__u64)w[1] << 32 | w[0], hi = (__u64)w[3] << 32 | w[2];
	__u64 h = (lo ^ 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL ^
		  (hi ^ ((__u64)src->slot << 8 | src->family)) * 0x94d049bb133111ebULL;

	h ^= h >> 31;
	__u16 *line = sk->cell[(h >> 40) & (SKETCH_LINES - 1)];
	__u32 est = ~0U;
#pragma unroll
	for (int r = 0; r < SKETCH_ROWS; r++) {
		__u16 *cell = &line[r * SKETCH_ROW_CELLS + ((h >> (3 * r)) & (SKETCH_ROW_CELLS - 1))];
		__u16 v = *cell;
		if (v != 0xffff)
			*cell = ++v;
		if (v < est)
			est = v;
	}
	return est;
}

/*
 * count_source gives the SYN to its source's exact entry if the source has
 * one or stands out enough to get one: at least cfg.source_threshold SYNs
 * on this CPU this interval, and more than twice what an average cell of
 * a row holds (a uniform spoofed flood fills every cell alike, and then no
 * source stands out). It returns 0 when counted exactly, -1 otherwise.
 */
static __always_inline int count_source(struct syn_source *src, struct syn_cpu *cpu)
{
	__u32 zero = 0;
	struct syn_cpu_state *st = &cpu->state;

	__u64 est = sketch_add(cpu, src);
	st->syns++;
	if (est < cfg.source_threshold || est * SKETCH_ROW_WIDTH <= 2 * st->syns)
		return -1;

	void *table = bpf_map_lookup_elem(&syn_sources, &zero);
	if (!table)
		return -1;
	struct syn_source_state *val = bpf_map_lookup_elem(table, src);
	if (val) {
		__sync_fetch_and_add(&val->syns, 1);
		return 0;
	}
	if (st->sources_full)
		return -1;
	struct syn_source_state init = {.syns = 1, .earlier = est - 1};
	if (bpf_map_update_elem(table, src, &init, BPF_NOEXIST) == 0)
		return 0;
	val = bpf_map_lookup_elem(table, src);
	if (val) {
		__sync_fetch_and_add(&val->syns, 1);
		return 0;
	}
	st->sources_full = 1;
	return -1;
}

static __always_inline void track_syn(void *data, void *data_end, struct packet *pkt,
				      struct flag_counters *c)
{
	__u32 zero = 0;
	struct syn_cpu *cpu = bpf_map_lookup_elem(&syn_percpu, &zero);
	struct syn_tuple tuple = {
		.sport = pkt->sport,
		.dport = pkt->dport,
		.slot = cfg.slot,
		.family = pkt->family,
	};

	/* Every way out of here counts the SYN exactly once per view. */
	if (!cpu || packet_addrs(data, data_end, pkt, tuple.saddr, tuple.daddr) != 0) {
		c->syn_untracked++;
		c->syn_untracked_source++;
		return;
	}
	if (count_tuple(&tuple, &cpu->state.tuples_full) != 0)
		c->syn_untracked++;

	struct syn_source src = {
		.slot = cfg.slot,
		.family = pkt->family,
	};
	__builtin_memcpy(src.addr, tuple.saddr, sizeof(src.addr));
	if (count_source(&src, cpu) != 0)
		c->syn_untracked_source++;
}

static __always_inline int syn_port_dropped(__u16 port)
{
	__u32 idx = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&drop_ports, &idx);

	return bits && (*bits & (1ULL << (port & 63)));
}

/* handle counts the packet and says whether to drop it. */
static __always_inline int handle(void *ctx, int ctx_kind, void *data, void *data_end, __u64 segs, int dir)
{
	__u32 slot = cfg.slot + (dir == DIR_OUT ? MAX_INTERFACES : 0);
	struct flag_counters *c = bpf_map_lookup_elem(&counters, &slot);
	struct packet pkt = {};

	if (!c)
		return 0;
	c->packets += segs;

	int res = parse_packet(data, data_end, &pkt);
	if (res == PARSE_MALFORMED) {
		c->malformed++;
		return 0;
	}
	if (res != PARSE_TCP)
		return 0;
	__u32 hdrs_len = capture_hdrs_len(data, data_end, &pkt);
	if (!pkt_filter_match(data, data_end, &pkt))
		return 0;
	capture_packet(ctx, ctx_kind, hdrs_len, cfg.slot, dir);

	__u8 f = pkt.flags;
	c->tcp_packets += segs;
	if (f & TCPF_FIN) c->fin++;
	if (f & TCPF_SYN) c->syn++;
	if (f & TCPF_RST) c->rst++;
	if (f & TCPF_PSH) c->psh++;
	if (f & TCPF_ACK) c->ack += segs;
	if (f & TCPF_URG) c->urg++;
	if (f & TCPF_ECE) c->ece++;
	if (f & TCPF_CWR) c->cwr++;
	if (f == 0) c->null_flags++;
	if ((f & (TCPF_FIN | TCPF_PSH | TCPF_URG)) == (TCPF_FIN | TCPF_PSH | TCPF_URG))
		c->xmas++;

	/* The guard decides first; the packet is still counted by every view. */
	int drop = guard_cfg.enabled && dir == DIR_IN && guard_packet(ctx, ctx_kind == CAPTURE_CTX_SKB, data, data_end, &pkt);

	if (!(f & TCPF_SYN))
		goto verdict;
	if (f & TCPF_FIN) c->syn_fin++;
	if (f & TCPF_RST) c->syn_rst++;
	if (f & TCPF_ACK) {
		c->syn_ack++;
		goto verdict;
	}
	c->syn_no_ack++;
	/* Tuple and source tables and drop rules are about SYNs received. */
	if (dir == DIR_OUT)
		return 0;
	if (cfg.track_syn)
		track_syn(data, data_end, &pkt, c);
	if (cfg.drop_syn_ports && syn_port_dropped(pkt.dport))
		drop = 1;
	if (syn_sig_cfg.enabled) {
		/* Last: the counting program ends the packet path (synsig.h). */
		if (drop)
			c->dropped++;
		if (ctx_kind == CAPTURE_CTX_SKB)
			syn_sig_tail(ctx, 1, pkt.tcp_off, cfg.slot, drop ? TC_ACT_SHOT : TC_ACT_UNSPEC);
		else
			syn_sig_tail(ctx, 0, pkt.tcp_off, cfg.slot, drop ? XDP_DROP : XDP_PASS);
		return drop;
	}
verdict:
	if (drop)
		c->dropped++;
	return drop;
}

SEC("xdp")
int tcplens_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return handle(ctx, CAPTURE_CTX_XDP, data, data_end, 1, DIR_IN) ? XDP_DROP : XDP_PASS;
}

/* tcplens_xdp with the capture stage (5.18+), loaded instead of it by
 * `tcplens capture` (see CAPTURE_CTX_XDP in capture.h). */
SEC("xdp")
int tcplens_xdp_capture(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return handle(ctx, CAPTURE_CTX_XDP_CAPTURE, data, data_end, 1, DIR_IN) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int tcplens_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	/* GRO hands TC one skb for several wire segments; count the segments. */
	__u64 segs = skb->gso_segs ? skb->gso_segs : 1;

	return handle(skb, CAPTURE_CTX_SKB, data, data_end, segs, DIR_IN) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

/* Packets sent: counted only, never dropped. A TSO/GSO skb is counted as
 * the segments it becomes on the wire, as on ingress. */
SEC("tc")
int tcplens_tc_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u64 segs = skb->gso_segs ? skb->gso_segs : 1;
	/* Opaque to clang, known to the verifier: with the direction a
	 * compile-time constant, clang sank the TCP flags load past the bounds
	 * check and rebuilt the pointer, which the verifier refuses. */
	int dir = DIR_OUT;
	asm volatile("" : "+r"(dir));

	return handle(skb, CAPTURE_CTX_SKB, data, data_end, segs, dir) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
