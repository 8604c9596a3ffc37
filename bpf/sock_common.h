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

/* Set by user space before load (--port, --host, -4, -6). */
struct sock_filter_cfg {
	__u16 port;        /* 0: any; else either end's port (host order) */
	__u8 family;       /* 0: any, 4 or 6 */
	__u8 host_family;  /* 0: no --host; else 4 or 6 */
	__u32 host_prefix; /* prefix length in bits of host_addr */
	union {
		__u8 host_addr[16];
		__u32 host_addr_words[4]; /* wire order, compared a word at a time */
	};
};

volatile const struct sock_filter_cfg filter = {};

/* Addresses as 16 bytes in wire order; IPv4 in the first 4. */
struct sock_addrs {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host order */
	__u16 dport;
	__u8 family; /* 4 or 6 */
	__u8 pad[3];
};

static __always_inline int prefix_match(const __u8 *addr)
{
	int prefix = filter.host_prefix;
	__u32 diff = 0;

	/*
	 * Word by word, with a fixed trip count and no early exit, so clang
	 * unrolls it into short straight code: word i is compared under the
	 * mask of the prefix bits that fall into it.
	 */
#pragma unroll
	for (int i = 0; i < 4; i++) {
		int bits = prefix - 32 * i;
		__u32 mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : bpf_htonl(0xffffffff << (32 - bits));
		__u32 a, h = filter.host_addr_words[i];
		__builtin_memcpy(&a, addr + 4 * i, 4);
		diff |= (a ^ h) & mask;
	}
	return diff == 0;
}

/* filter_match applies --port/--host/-4/-6; both ends are considered. */
static __always_inline int filter_match(const struct sock_addrs *a)
{
	if (filter.family && filter.family != a->family)
		return 0;
	if (filter.port && filter.port != a->sport && filter.port != a->dport)
		return 0;
	if (filter.host_family) {
		if (filter.host_family != a->family)
			return 0;
		if (!prefix_match(a->saddr) && !prefix_match(a->daddr))
			return 0;
	}
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

/* One ring buffer and its loss counter per object; size set at load. */
#define DEFINE_EVENT_OUTPUT()                                   \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_RINGBUF);             \
		__uint(max_entries, 1 << 20);                   \
	} events SEC(".maps");                                  \
	struct {                                                \
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);        \
		__uint(max_entries, 1);                         \
		__type(key, __u32);                             \
		__type(value, __u64);                           \
	} lost SEC(".maps");                                    \
	static __always_inline void *reserve_event(__u64 size)  \
	{                                                       \
		void *e = bpf_ringbuf_reserve(&events, size, 0); \
		if (!e) {                                       \
			__u32 zero = 0;                         \
			__u64 *n = bpf_map_lookup_elem(&lost, &zero); \
			if (n)                                  \
				(*n)++;                         \
		}                                               \
		return e;                                       \
	}                                                       \
	static __always_inline void submit_event(void *e)       \
	{                                                       \
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA); \
		__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE); \
		bpf_ringbuf_submit(e, avail >= size / EVENT_WAKEUP_FRACTION ? \
				   BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP); \
	}
