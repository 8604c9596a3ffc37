/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Wire formats the packet parser reads. Declared here, byte-oriented, so the
 * parser depends on exactly these fields and nothing of the host's headers'
 * bitfield layout.
 */
#pragma once

#include <linux/types.h>

struct eth_hdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__u16 h_proto;
} __attribute__((packed));

struct vlan_hdr {
	__u16 h_vlan_tci;
	__u16 h_vlan_encapsulated_proto;
};

#define IPV4_FRAG_OFFSET_MASK 0x1fff

struct ipv4_hdr {
	__u8 version_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

struct ipv6_hdr {
	__u8 vtc_flow[4];
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Hop-by-hop, routing, destination options and AH all start like this. */
struct ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

#define IPV6_FRAG_OFFSET_MASK 0xfff8

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__u16 frag_off;
	__u32 identification;
};

struct tcp_hdr {
	__u16 source;
	__u16 dest;
	__u32 seq;
	__u32 ack_seq;
	__u8 doff_res; /* data offset in the high nibble */
	__u8 flags;
	__u16 window;
	__u16 check;
	__u16 urg_ptr;
};
