//go:build ignore
/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packet path: TCP flag counts, SYN tracking and SYN drop rules.
 *
 * One handler, two entry points: XDP (tcplens_xdp) and TC ingress through
 * tcx (tcplens_tc). User space loads one copy per interface, each with its
 * own cfg.slot, all sharing the maps, so the per-packet counter lookup is a
 * constant index into a per-CPU array.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include "parse.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define MAX_INTERFACES 64

struct packet_config {
	__u32 slot;          /* index of this interface's counters */
	__u8 track_syn;      /* fill syn_tuples / syn_sources */
	__u8 drop_syn_ports; /* consult drop_ports for SYNs */
	__u8 pad[2];
};

volatile const struct packet_config cfg = {};

/* Per interface; every packet touches it, so it is per-CPU. */
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

struct syn_source {
	__u8 addr[16];
	__u16 slot;
	__u8 family;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_INTERFACES);
	__type(key, __u32);
	__type(value, struct flag_counters);
} counters SEC(".maps");

/* Keyed by what remote peers send, so LRU and bounded; sized at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_tuple);
	__type(value, __u64);
} syn_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syn_source);
	__type(value, __u64);
} syn_sources SEC(".maps");

/* One bit per destination port: drop SYNs to it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536 / 64);
	__type(key, __u32);
	__type(value, __u64);
} drop_ports SEC(".maps");

static __always_inline void count_key(void *map, void *key)
{
	__u64 one = 1, *val = bpf_map_lookup_elem(map, key);

	if (val) {
		__sync_fetch_and_add(val, 1);
		return;
	}
	/* A racing CPU may have inserted it first: then add to theirs. */
	if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) != 0) {
		val = bpf_map_lookup_elem(map, key);
		if (val)
			__sync_fetch_and_add(val, 1);
	}
}

static __always_inline void track_syn(void *data, void *data_end, struct packet *pkt)
{
	struct syn_tuple tuple = {
		.sport = pkt->sport,
		.dport = pkt->dport,
		.slot = cfg.slot,
		.family = pkt->family,
	};
	if (packet_addrs(data, data_end, pkt, tuple.saddr, tuple.daddr) != 0)
		return;
	count_key(&syn_tuples, &tuple);

	struct syn_source src = {
		.slot = cfg.slot,
		.family = pkt->family,
	};
	__builtin_memcpy(src.addr, tuple.saddr, sizeof(src.addr));
	count_key(&syn_sources, &src);
}

static __always_inline int syn_port_dropped(__u16 port)
{
	__u32 idx = port >> 6;
	__u64 *bits = bpf_map_lookup_elem(&drop_ports, &idx);

	return bits && (*bits & (1ULL << (port & 63)));
}

/* handle counts the packet and says whether to drop it. */
static __always_inline int handle(void *data, void *data_end, __u64 segs)
{
	__u32 slot = cfg.slot;
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

	if (!(f & TCPF_SYN))
		return 0;
	if (f & TCPF_FIN) c->syn_fin++;
	if (f & TCPF_RST) c->syn_rst++;
	if (f & TCPF_ACK) {
		c->syn_ack++;
		return 0;
	}
	c->syn_no_ack++;
	if (cfg.track_syn)
		track_syn(data, data_end, &pkt);
	if (cfg.drop_syn_ports && syn_port_dropped(pkt.dport)) {
		c->dropped++;
		return 1;
	}
	return 0;
}

SEC("xdp")
int tcplens_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	return handle(data, data_end, 1) ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int tcplens_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	/* GRO hands TC one skb for several wire segments; count the segments. */
	__u64 segs = skb->gso_segs ? skb->gso_segs : 1;

	return handle(data, data_end, segs) ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}
