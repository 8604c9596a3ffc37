/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reading a connection's addresses from its struct sock with CO-RE, for
 * the programs on raw tracepoints, whose arguments are the kernel's own
 * pointers rather than a record with the addresses copied out.
 */
#pragma once

#include "sock_common.h"
#include "headers/tcp_sock.h"

#include <bpf/bpf_core_read.h>

/*
 * sock_addrs_of fills a from sk: this host's end in saddr/sport (the bound
 * address and source port), the peer's in daddr/dport, as the tracepoint
 * records of sock:inet_sock_set_state and tcp:* would give them.
 */
static __always_inline void sock_addrs_of(struct sock_addrs *a, const struct sock___tl *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	/*
	 * Not skc_num: at CLOSE the kernel has already released the port
	 * (inet_put_port zeroes it) when it traces the transition; the
	 * tracepoint's own record reads inet_sport, as this does.
	 */
	a->sport = bpf_ntohs(BPF_CORE_READ((const struct inet_sock___tl *)sk, inet_sport));
	a->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET6) {
		a->family = 6;
		BPF_CORE_READ_INTO(&a->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&a->daddr, sk, __sk_common.skc_v6_daddr);
	} else {
		a->family = 4;
		__be32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(a->saddr, &s, 4);
		__builtin_memcpy(a->daddr, &d, 4);
	}
}
