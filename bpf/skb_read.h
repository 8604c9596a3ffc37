/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading a TCP packet's addresses, ports and flags from its sk_buff with
 * CO-RE, for the raw tracepoint programs that get the kernel's skb pointer
 * (skb:kfree_skb, and tcp:tcp_send_reset for a reset with no socket).
 */
#pragma once

#include "sock_common.h"
#include "headers/skbuff.h"
#include "headers/net.h"

#include <bpf/bpf_core_read.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif

/*
 * skb_tcp_packet fills pkt with the packet's own addresses and ports
 * (saddr/sport: its sender) and th with its TCP header, read through the
 * skb's network header. It returns 0, or -1 for anything but the first
 * fragment of TCP over IPv4 or IPv6 (TCP right after the fixed IPv6
 * header: extension headers are not walked), or when a read fails.
 */
static __always_inline int skb_tcp_packet(const struct sk_buff *skb, struct sock_addrs *pkt, struct tcp_hdr *th)
{
	__u16 protocol = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (protocol != ETH_P_IP && protocol != ETH_P_IPV6)
		return -1;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	if (!head || nh == 0xffff)
		return -1;

	__u32 th_off;
	if (protocol == ETH_P_IP) {
		struct ipv4_hdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return -1;
		__u8 ihl = ip.version_ihl & 0x0f;
		if ((ip.version_ihl >> 4) != 4 || ihl < 5 || ip.protocol != IPPROTO_TCP)
			return -1;
		if (bpf_ntohs(ip.frag_off) & IPV4_FRAG_OFFSET_MASK)
			return -1; /* a later fragment: no TCP header */
		pkt->family = 4;
		__builtin_memcpy(pkt->saddr, &ip.saddr, 4);
		__builtin_memcpy(pkt->daddr, &ip.daddr, 4);
		th_off = nh + ihl * 4;
	} else {
		struct ipv6_hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return -1;
		if ((ip6.vtc_flow[0] >> 4) != 6 || ip6.nexthdr != IPPROTO_TCP)
			return -1;
		pkt->family = 6;
		__builtin_memcpy(pkt->saddr, ip6.saddr, 16);
		__builtin_memcpy(pkt->daddr, ip6.daddr, 16);
		th_off = nh + sizeof(ip6);
	}
	if (bpf_probe_read_kernel(th, sizeof(*th), head + th_off))
		return -1;
	pkt->sport = bpf_ntohs(th->source);
	pkt->dport = bpf_ntohs(th->dest);
	return 0;
}

/* turn_around makes a a packet's tuple seen from its receiver: this host's
 * end (the packet's destination) first. */
static __always_inline void turn_around(struct sock_addrs *a, const struct sock_addrs *pkt)
{
	a->family = pkt->family;
	__builtin_memcpy(a->saddr, pkt->daddr, 16);
	__builtin_memcpy(a->daddr, pkt->saddr, 16);
	a->sport = pkt->dport;
	a->dport = pkt->sport;
}
