/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one packet parser shared by every packet-path program.
 *
 * Ethernet, up to two VLAN tags (802.1Q / 802.1ad), IPv4 honouring IHL,
 * IPv6 walking extension headers, TCP honouring the data offset. Every read
 * is bounds-checked against data_end with the lengths the headers claim,
 * never with `hdr + 1` alone, so options and extension headers are skipped
 * correctly and a truncated or lying header is reported as malformed.
 */
#pragma once

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "headers/net.h"

#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HDRS 6

enum parse_result {
	PARSE_NOT_TCP = 0,   /* not IP, not TCP, or a non-first fragment: pass untouched */
	PARSE_TCP = 1,       /* a complete TCP header is in pkt->tcp_off .. + tcp_hdr_len */
	PARSE_MALFORMED = 2, /* truncated or inconsistent headers */
};

/* TCP flag bits as they sit in byte 13 of the TCP header. */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10
#define TCPF_URG 0x20
#define TCPF_ECE 0x40
#define TCPF_CWR 0x80

/*
 * What the parser found. Addresses are not copied here: most packets never
 * need them, and an IPv6 pair is 32 bytes; packet_addrs() reads them for
 * the few that do.
 */
struct packet {
	__u16 sport;   /* host byte order */
	__u16 dport;
	__u16 l3_off;  /* offset of the IP header from the frame start */
	__u16 tcp_off; /* offset of the TCP header from the frame start */
	__u8 family;   /* 4 or 6 */
	__u8 flags;    /* TCP flags byte */
};

/* The IPv6 extension headers that may sit between the fixed header and TCP. */
static __always_inline int ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == IPPROTO_HOPOPTS || nexthdr == IPPROTO_ROUTING ||
	       nexthdr == IPPROTO_DSTOPTS || nexthdr == IPPROTO_FRAGMENT ||
	       nexthdr == IPPROTO_AH;
}

/*
 * room is how many bytes the IP header says follow it: a TCP header longer
 * than that runs past the datagram into padding or the next frame's bytes.
 */
static __always_inline int parse_tcp(void *data, void *data_end, __u64 off,
				     __u32 room, struct packet *pkt)
{
	struct tcp_hdr *tcp = data + off;

	if ((void *)(tcp + 1) > data_end)
		return PARSE_MALFORMED;
	__u32 hdr_len = (__u32)(tcp->doff_res >> 4) * 4;
	if (hdr_len < sizeof(*tcp) || hdr_len > room)
		return PARSE_MALFORMED;
	if (data + off + hdr_len > data_end)
		return PARSE_MALFORMED;

	pkt->sport = bpf_ntohs(tcp->source);
	pkt->dport = bpf_ntohs(tcp->dest);
	pkt->flags = tcp->flags;
	pkt->tcp_off = off;
	return PARSE_TCP;
}

static __always_inline int parse_ipv4(void *data, void *data_end, __u64 off,
				      struct packet *pkt)
{
	struct ipv4_hdr *ip = data + off;

	if ((void *)(ip + 1) > data_end)
		return PARSE_MALFORMED;
	if ((ip->version_ihl >> 4) != 4)
		return PARSE_MALFORMED;
	__u32 hdr_len = (__u32)(ip->version_ihl & 0x0f) * 4;
	if (hdr_len < sizeof(*ip))
		return PARSE_MALFORMED;
	if (data + off + hdr_len > data_end)
		return PARSE_MALFORMED;
	__u32 tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hdr_len)
		return PARSE_MALFORMED;
	if (ip->protocol != IPPROTO_TCP)
		return PARSE_NOT_TCP;
	/* Only the first fragment carries the TCP header. */
	if (bpf_ntohs(ip->frag_off) & IPV4_FRAG_OFFSET_MASK)
		return PARSE_NOT_TCP;

	pkt->family = 4;
	pkt->l3_off = off;
	return parse_tcp(data, data_end, off + hdr_len, tot_len - hdr_len, pkt);
}

static __always_inline int parse_ipv6(void *data, void *data_end, __u64 off,
				      struct packet *pkt)
{
	struct ipv6_hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > data_end)
		return PARSE_MALFORMED;
	if ((ip6->vtc_flow[0] >> 4) != 6)
		return PARSE_MALFORMED;

	__u8 nexthdr = ip6->nexthdr;
	__u16 l3_off = off;
	/* Payload length 0 (jumbogram, BIG TCP GRO) leaves the frame as the bound. */
	__u32 room = bpf_ntohs(ip6->payload_len);
	if (room == 0)
		room = 0xffffffff;
	off += sizeof(*ip6);

	/* Most TCP over IPv6 has no extension header: skip the walk. */
	if (nexthdr != IPPROTO_TCP) {
#pragma unroll
		for (int i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
			if (!ipv6_is_ext(nexthdr))
				break;
			struct ipv6_opt_hdr *ext = data + off;
			if ((void *)(ext + 1) > data_end)
				return PARSE_MALFORMED;
			__u32 ext_len;
			if (nexthdr == IPPROTO_FRAGMENT) {
				struct ipv6_frag_hdr *frag = data + off;
				if ((void *)(frag + 1) > data_end)
					return PARSE_MALFORMED;
				if (bpf_ntohs(frag->frag_off) & IPV6_FRAG_OFFSET_MASK)
					return PARSE_NOT_TCP;
				ext_len = sizeof(*frag);
			} else if (nexthdr == IPPROTO_AH) {
				ext_len = ((__u32)ext->hdrlen + 2) * 4;
			} else {
				ext_len = ((__u32)ext->hdrlen + 1) * 8;
			}
			/* A truncated or oversized extension header is malformed even when
			 * no TCP header follows, as a truncated IPv4 header is. */
			if (data + off + ext_len > data_end || ext_len > room)
				return PARSE_MALFORMED;
			room -= ext_len;
			nexthdr = ext->nexthdr;
			off += ext_len;
		}
	}
	if (nexthdr != IPPROTO_TCP)
		return PARSE_NOT_TCP;
	/* Keep the verifier's view of the offset bounded before the TCP read. */
	if (off > 0xffff)
		return PARSE_MALFORMED;

	pkt->family = 6;
	pkt->l3_off = l3_off;
	return parse_tcp(data, data_end, off, room, pkt);
}

/*
 * parse_packet fills pkt from the frame in [data, data_end) and tells what it
 * found. It never reads outside the frame.
 */
static __always_inline int parse_packet(void *data, void *data_end, struct packet *pkt)
{
	struct eth_hdr *eth = data;
	__u64 off = sizeof(*eth);

	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	__u16 proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vlan = data + off;
		if ((void *)(vlan + 1) > data_end)
			return PARSE_MALFORMED;
		proto = vlan->h_vlan_encapsulated_proto;
		off += sizeof(*vlan);
	}

	if (proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(data, data_end, off, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(data, data_end, off, pkt);
	return PARSE_NOT_TCP;
}

/*
 * packet_addrs copies the source and destination address of a packet that
 * parse_packet() reported as PARSE_TCP, as 16 bytes in wire order each
 * (IPv4 in the first 4). It returns 0, or -1 if the frame is shorter than the
 * parser saw (which cannot happen, but the verifier wants the check).
 */
static __always_inline int packet_addrs(void *data, void *data_end, const struct packet *pkt,
					__u8 saddr[16], __u8 daddr[16])
{
	__u32 off = pkt->l3_off;

	/* Ethernet plus at most two VLAN tags. */
	if (off > sizeof(struct eth_hdr) + MAX_VLAN_TAGS * sizeof(struct vlan_hdr))
		return -1;
	if (pkt->family == 4) {
		struct ipv4_hdr *ip = data + off;
		if ((void *)(ip + 1) > data_end)
			return -1;
		__builtin_memcpy(saddr, &ip->saddr, 4);
		__builtin_memcpy(daddr, &ip->daddr, 4);
		return 0;
	}
	struct ipv6_hdr *ip6 = data + off;
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	__builtin_memcpy(saddr, &ip6->saddr, 16);
	__builtin_memcpy(daddr, &ip6->daddr, 16);
	return 0;
}
