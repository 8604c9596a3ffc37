/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The struct sock and struct tcp_sock fields that `rtt` and `states` read,
 * relocated with CO-RE (preserve_access_index): only what is used.
 *
 * The names carry a "___tl" flavor suffix, which CO-RE ignores when it
 * matches them against the kernel's struct sock, sock_common and tcp_sock:
 * this header can then be included next to headers/skbuff.h (which
 * declares its own, smaller struct sock) without the two clashing.
 * Fields the kernel nests in anonymous unions and structs are declared
 * flat; CO-RE matches them by name.
 */
#pragma once

#include <linux/types.h>

struct in6_addr___tl {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common___tl {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num; /* local port, host order */
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr___tl skc_v6_daddr;
	struct in6_addr___tl skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct atomic___tl {
	int counter;
} __attribute__((preserve_access_index));

struct sock_backlog___tl {
	struct atomic___tl rmem_alloc; /* sk_rmem_alloc */
} __attribute__((preserve_access_index));

struct sock___tl {
	struct sock_common___tl __sk_common;
	struct sock_backlog___tl sk_backlog;
	int sk_rcvbuf;
	int sk_sndbuf;
	int sk_wmem_queued;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

/* inet_sock: its struct sock first, then the source port in wire order,
 * which stays set when the kernel zeroes skc_num (inet_put_port, before
 * the CLOSE transition is traced). */
struct inet_sock___tl {
	struct sock___tl sk;
	__be16 inet_sport;
} __attribute__((preserve_access_index));

/* inet_connection_sock, first member of tcp_sock: only the congestion
 * avoidance state (TCP_CA_Open .. TCP_CA_Loss), a 5-bit field. */
struct inet_connection_sock___tl {
	__u8 icsk_ca_state:5;
} __attribute__((preserve_access_index));

struct tcp_sock___tl {
	struct inet_connection_sock___tl inet_conn;
	__u32 snd_wnd;
	__u32 snd_cwnd;
	__u32 snd_ssthresh;
	__u32 srtt_us; /* smoothed RTT << 3 */
	__u32 mdev_us; /* medium deviation << 2: tcpi_rttvar */
	__u32 rcv_wnd;
	__u32 packets_out;
	__u32 retrans_out;
	__u32 total_retrans;
	__u64 bytes_acked;    /* tcpi_bytes_acked: sent and acknowledged */
	__u64 bytes_received; /* tcpi_bytes_received */
} __attribute__((preserve_access_index));

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12

#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
