/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel fields the socket-path programs read from an sk_buff and a
 * sock, relocated with CO-RE (preserve_access_index): only what is used.
 * The kernel nests several of these in anonymous unions and structs; CO-RE
 * matches them by name, so they are declared flat here.
 */
#pragma once

#include <linux/types.h>

struct sk_buff {
	unsigned char *head;
	__be16 protocol; /* ETH_P_* in wire order */
	__u16 network_header;
	__u16 transport_header;
	int skb_iif; /* ifindex it arrived on; 0 for what this host sends */
	char cb[48];
} __attribute__((preserve_access_index));

/* TCP's view of skb->cb (include/net/tcp.h, TCP_SKB_CB). */
struct tcp_skb_cb {
	__u32 seq;
	__u32 end_seq;
	union {
		__u32 tcp_tw_isn;
		struct {
			__u16 tcp_gso_segs; /* tcp_skb_pcount() */
			__u16 tcp_gso_size;
		};
	};
} __attribute__((preserve_access_index));

struct sock_common {
	unsigned char skc_state;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 total_retrans; /* tcpi_total_retrans */
} __attribute__((preserve_access_index));
