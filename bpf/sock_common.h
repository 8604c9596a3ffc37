/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shared by the socket-path programs (tracepoints on the kernel's TCP
 * state): the in-kernel filter, address copying and ring buffer output with
 * loss counting. Each program file is its own object, so each gets its own
 * `events` ring buffer and `lost` counter from DEFINE_EVENT_OUTPUT().
 */
#pragma once

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/*
 * Set by user space before load (--port, --lport, --rport, --host, -4, -6).
 * Flags of one kind match if any of their values does; kinds combine with
 * AND. A fixed handful of entries in the constant, not a map: the verifier
 * sees the counts as constants and drops the loops of unused kinds, and a
 * used kind costs a few compares per entry, less than one map lookup.
 */
#define FILTER_MAX_PORTS 8
#define FILTER_MAX_PREFIXES 8

struct filter_prefix {
	__u32 addr[4]; /* wire order, masked; IPv4 in addr[0] */
	__u32 mask[4]; /* wire order: the prefix's bits */
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];
};

struct sock_filter_cfg {
	__u16 ports[FILTER_MAX_PORTS];  /* --port: either end (host order) */
	__u16 lports[FILTER_MAX_PORTS]; /* --lport: this host's end */
	__u16 rports[FILTER_MAX_PORTS]; /* --rport: the remote end */
	__u8 n_ports;
	__u8 n_lports;
	__u8 n_rports;
	__u8 n_prefixes;
	__u8 family; /* 0: any, 4 or 6 */
	__u8 pad[3];
	struct filter_prefix prefixes[FILTER_MAX_PREFIXES]; /* --host: either end */
};

volatile const struct sock_filter_cfg filter = {};

/*
 * Addresses as 16 bytes in wire order; IPv4 in the first 4. saddr/sport
 * are this host's end in every program.
 */
struct sock_addrs {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host order */
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
};

static __always_inline int port_listed(const volatile __u16 *list, __u8 n, __u16 port)
{
#pragma unroll
	for (int i = 0; i < FILTER_MAX_PORTS; i++)
		if (i < n && list[i] == port)
			return 1;
	return 0;
}

static __always_inline int prefix_match(const volatile struct filter_prefix *p, __u8 family, const __u8 *addr)
{
	__u32 diff = 0;

	if (p->family != family)
		return 0;
	/* Fixed trip count, no early exit: short straight code. */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 a;
		__builtin_memcpy(&a, addr + 4 * i, 4);
		diff |= (a ^ p->addr[i]) & p->mask[i];
	}
	return diff == 0;
}

static __always_inline int host_listed(const struct sock_addrs *a)
{
#pragma unroll
	for (int i = 0; i < FILTER_MAX_PREFIXES; i++) {
		if (i >= filter.n_prefixes)
			break;
		if (prefix_match(&filter.prefixes[i], a->family, a->saddr) ||
		    prefix_match(&filter.prefixes[i], a->family, a->daddr))
			return 1;
	}
	return 0;
}

static __always_inline int v4_mapped(const __u8 *b)
{
	__u64 lo;
	__u32 mid;

	__builtin_memcpy(&lo, b, 8);
	__builtin_memcpy(&mid, b + 8, 4);
	return lo == 0 && mid == bpf_htonl(0xffff);
}

static __always_inline int all_zero(const __u8 *b)
{
	__u64 lo, hi;

	__builtin_memcpy(&lo, b, 8);
	__builtin_memcpy(&hi, b + 8, 8);
	return (lo | hi) == 0;
}

/*
 * An IPv4 peer of a dual-stack (AF_INET6) socket has ::ffff:a.b.c.d
 * addresses: make it family 4 with the 4 bytes first, so -4, --host
 * a.b.c.d and the output treat it as the IPv4 connection it is. An end
 * that is :: (not bound yet) becomes 0.0.0.0 with it.
 */
static __always_inline void unmap_v4(struct sock_addrs *a)
{
	if (a->family != 6)
		return;
	int s = v4_mapped(a->saddr), d = v4_mapped(a->daddr);
	if (!(s || d) || !(s || all_zero(a->saddr)) || !(d || all_zero(a->daddr)))
		return;
	__u32 s4, d4;
	__builtin_memcpy(&s4, a->saddr + 12, 4);
	__builtin_memcpy(&d4, a->daddr + 12, 4);
	__builtin_memset(a->saddr, 0, 16);
	__builtin_memset(a->daddr, 0, 16);
	__builtin_memcpy(a->saddr, &s4, 4);
	__builtin_memcpy(a->daddr, &d4, 4);
	a->family = 4;
}

/*
 * filter_match applies --port/--lport/--rport/--host/-4/-6 to a's
 * connection. It first turns v4-mapped addresses into IPv4 (unmap_v4), in
 * place: every program passes the addresses it is about to report through
 * here, so this is the one place that does it for all of them, whichever
 * way they filled a.
 */
static __always_inline int filter_match(struct sock_addrs *a)
{
	unmap_v4(a);
	if (filter.family && filter.family != a->family)
		return 0;
	if (filter.n_ports && !port_listed(filter.ports, filter.n_ports, a->sport) &&
	    !port_listed(filter.ports, filter.n_ports, a->dport))
		return 0;
	if (filter.n_lports && !port_listed(filter.lports, filter.n_lports, a->sport))
		return 0;
	if (filter.n_rports && !port_listed(filter.rports, filter.n_rports, a->dport))
		return 0;
	if (filter.n_prefixes && !host_listed(a))
		return 0;
	return 1;
}

/*
 * Fill addrs from a tracepoint's usual fields: sport/dport in host order,
 * family as AF_*, saddr/daddr (IPv4) and saddr_v6/daddr_v6.
 */
static __always_inline void addrs_from_tp(struct sock_addrs *a, __u16 family, __u16 sport,
					  __u16 dport, const __u8 *s4, const __u8 *d4,
					  const __u8 *s6, const __u8 *d6)
{
	a->sport = sport;
	a->dport = dport;
	if (family == AF_INET6) {
		a->family = 6;
		__builtin_memcpy(a->saddr, s6, 16);
		__builtin_memcpy(a->daddr, d6, 16);
	} else {
		a->family = 4;
		__builtin_memcpy(a->saddr, s4, 4);
		__builtin_memcpy(a->daddr, d4, 4);
	}
}

/*
 * Waking the ring buffer's reader is what a record costs: the kernel wakes
 * it through irq_work, whose self-IPI in a VM traps to the hypervisor, and
 * with the default flags it does so for every record that finds the ring
 * empty, which a reader that keeps up nearly always does. On our VMs that
 * was 4-12 us per record against 0.4-0.9 us for everything else the
 * programs do (BENCHMARKS.md, "Socket path").
 *
 * So submit_event() does not wake the reader until the ring holds
 * 1/EVENT_WAKEUP_FRACTION of its size; from there on every record forces a
 * wakeup, until the reader has drained the ring below that mark again. The
 * reader (cli's streamLoop) polls with a deadline of at most 100 ms and
 * reads whatever is in the ring when it passes, so a lone record reaches
 * user space within about 100 ms instead of at once: that latency is the
 * trade-off. A burst wakes it early: 1/16 of the default 1 MiB ring is
 * 64 KiB, 500-900 records (72-128 bytes with the header), which amortises
 * one wakeup to ~10 ns per record and leaves 15/16 of the ring to absorb
 * records while the woken reader gets scheduled. The fraction of the
 * ring's actual size (not a byte count) keeps it meaningful for the tiny
 * rings that tests use to provoke loss.
 */
#define EVENT_WAKEUP_FRACTION 16

/*
 * What a program could not do, by cause: the keys of the per-CPU `lost`
 * array (internal/events reads them by these numbers). A third cause,
 * runs the kernel skipped because a tracepoint program was re-entered on
 * its CPU, is counted by the kernel itself (recursion_misses of each
 * program) and read by user space.
 */
#define LOST_RING_BUFFER 0 /* a record found the ring buffer full */
#define LOST_MAP_FULL 1    /* a per-socket map entry could not be created */
/*
 * states: a socket freed (tcp_destroy_sock) whose CLOSE the program never
 * saw, a missed run found after the fact. Some kernels (6.1) do not count
 * recursion misses of tracepoint programs, so there this is the only sign.
 */
#define LOST_UNSEEN_CLOSE 2
/*
 * Not a loss but its opposite: events a program's backup copy handled
 * because the kernel skipped the main program for recursion (states, see
 * bpf/states.c). User space subtracts them from the main program's
 * recursion misses.
 */
#define LOST_RECOVERED 3
#define LOST_CAUSES 4

/* One ring buffer and its loss counters per object; size set at load. */
#define DEFINE_EVENT_OUTPUT()                                   \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_RINGBUF);             \
		__uint(max_entries, 1 << 20);                   \
	} events SEC(".maps");                                  \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);        \
		__uint(max_entries, LOST_CAUSES);               \
		__type(key, __u32);                             \
		__type(value, __u64);                           \
	} lost SEC(".maps");                                    \
	static __always_inline void count_lost(__u32 cause)     \
	{                                                       \
		__u64 *n = bpf_map_lookup_elem(&lost, &cause);  \
		if (n)                                          \
			(*n)++;                                 \
	}                                                       \
	static __always_inline void *reserve_event(__u64 size)  \
	{                                                       \
		void *e = bpf_ringbuf_reserve(&events, size, 0); \
		if (!e)                                         \
			count_lost(LOST_RING_BUFFER);           \
		return e;                                       \
	}                                                       \
	static __always_inline void submit_event(void *e)       \
	{                                                       \
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA); \
		__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE); \
		bpf_ringbuf_submit(e, avail >= size / EVENT_WAKEUP_FRACTION ? \
				   BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP); \
	}
