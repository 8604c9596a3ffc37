/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The capture stage of the packet path: the first bytes of every packet
 * that passed the filter go to user space through a ring buffer, with a
 * kernel timestamp and the original length, for `tcplens capture`.
 *
 * A record is built in a per-CPU scratch buffer and sent with
 * bpf_ringbuf_output(), whose size may vary: reserving a fixed
 * CAPTURE_MAX_SNAPLEN per packet would fill the ring with unused bytes
 * when only headers are taken. Copies go through bpf_skb_load_bytes() and
 * bpf_xdp_load_bytes() (5.18+), which read paged data too, so a whole
 * packet is taken up to CAPTURE_MAX_SNAPLEN bytes.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "parse.h"

#define CAPTURE_MAX_SNAPLEN 4096

struct capture_config {
	__u32 snaplen; /* 0: no capture; CAPTURE_SNAP_HEADERS: through the TCP header */
	__u8 enabled;
	__u8 pad[3];
};

/* snaplen meaning "Ethernet, IP and TCP headers with their options". */
#define CAPTURE_SNAP_HEADERS 0xffffffff

volatile const struct capture_config capture_cfg = {};

/* One record's header; cap_len bytes of the frame follow it. */
struct capture_event {
	__u64 ts_ns;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 orig_len; /* the frame's length (a GSO skb: all of it, as tcpdump sees it) */
	__u32 cap_len;
	__u16 slot;     /* the interface's slot */
	__u8 dir;       /* DIR_IN or DIR_OUT */
	__u8 pad[5];
};

struct capture_buf {
	struct capture_event ev;
	__u8 data[CAPTURE_MAX_SNAPLEN];
};

/* Per CPU, every matching packet touches it. */
struct capture_counters {
	__u64 matched;  /* packets that passed the filter */
	__u64 captured; /* records written to the ring */
	__u64 lost;     /* records the full ring refused */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture_buf);
} capture_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture_counters);
} capture_stats SEC(".maps");

/* Size set at load (--buffer-size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} capture_ring SEC(".maps");

/* As submit_event() in sock_common.h: wake the reader only once the ring
 * holds a sixteenth of its size, so a record costs no wakeup IPI; the
 * reader polls with a deadline for the records below the mark. */
#define CAPTURE_WAKEUP_FRACTION 16

/*
 * capture_copy copies the first bytes of the packet into the ring.
 * hdrs_len is the length of the Ethernet, IP and TCP headers. It reads the
 * packet through the load_bytes helpers only: a global function sees no
 * packet bounds its caller checked.
 */
static __always_inline int capture_copy(void *ctx, int xdp, __u32 hdrs_len, __u32 slot, __u32 dir)
{
	__u32 zero = 0;
	struct capture_counters *st;
	struct capture_buf *buf;
	__u32 len, pkt_len;
	long err;

	st = bpf_map_lookup_elem(&capture_stats, &zero);
	buf = bpf_map_lookup_elem(&capture_scratch, &zero);
	if (!st || !buf)
		return 0;
	st->matched++;

	if (xdp)
		pkt_len = bpf_xdp_get_buff_len(ctx);
	else
		pkt_len = ((struct __sk_buff *)ctx)->len;

	len = capture_cfg.snaplen;
	if (len == CAPTURE_SNAP_HEADERS)
		len = hdrs_len;
	if (len > pkt_len)
		len = pkt_len;
	if (len > CAPTURE_MAX_SNAPLEN)
		len = CAPTURE_MAX_SNAPLEN;
	if (len == 0)
		return 0;
	/* 1..CAPTURE_MAX_SNAPLEN in a form the verifier follows (clang turned
	 * the comparisons above into ones it loses track of). */
	asm volatile("" : "+r"(len));
	len = ((len - 1) & (CAPTURE_MAX_SNAPLEN - 1)) + 1;

	if (xdp)
		err = bpf_xdp_load_bytes(ctx, 0, buf->data, len);
	else
		err = bpf_skb_load_bytes(ctx, 0, buf->data, len);
	if (err) {
		st->lost++; /* cannot happen: len is within the packet */
		return 0;
	}

	buf->ev.ts_ns = bpf_ktime_get_ns();
	buf->ev.orig_len = pkt_len;
	buf->ev.cap_len = len;
	buf->ev.slot = slot;
	buf->ev.dir = dir;

	/* Wake the reader only when this record takes the ring across the
	 * mark: a reader behind the mark is awake already (it sleeps only with
	 * the ring empty), and forcing a wakeup for every record then, as
	 * submit_event() does, cost hundreds of ns per record here. */
	__u64 avail = bpf_ringbuf_query(&capture_ring, BPF_RB_AVAIL_DATA);
	__u64 mark = bpf_ringbuf_query(&capture_ring, BPF_RB_RING_SIZE) / CAPTURE_WAKEUP_FRACTION;
	__u64 rec = (sizeof(buf->ev) + len + 8 + 7) & ~7ULL; /* with the ring's record header */
	__u64 flags = avail < mark && avail + rec >= mark ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&capture_ring, buf, sizeof(buf->ev) + len, flags) == 0)
		st->captured++;
	else
		st->lost++;
	return 0;
}

/*
 * The stage's entry points are global functions: the verifier checks each
 * once, with its arguments unknown, instead of once for every path that
 * reaches it through the parser and the filter (with it inlined, a long
 * filter made the capture stage most of the verifier's work: 584,000
 * instructions for a 31-instruction filter). One per hook, as the helpers
 * differ; each program links only the one it calls.
 */
__attribute__((noinline)) int capture_skb(struct __sk_buff *skb, __u32 hdrs_len, __u32 slot, __u32 dir)
{
	return capture_copy(skb, 0, hdrs_len, slot, dir);
}

__attribute__((noinline)) int capture_xdp(struct xdp_md *xdp, __u32 hdrs_len, __u32 slot, __u32 dir)
{
	return capture_copy(xdp, 1, hdrs_len, slot, dir);
}

/*
 * capture_hdrs_len is the length of the Ethernet, IP and TCP headers of a
 * PARSE_TCP packet, for the default snaplen (0 with capture off). It is
 * read before the filter runs, where the parser's bounds checks still
 * hold: in the stage, a load_bytes call for the byte cost TC more than
 * the rest of the stage, and read after the filter, the pointer arithmetic
 * made the verifier tell apart every path through the filter again.
 */
static __always_inline __u32 capture_hdrs_len(void *data, void *data_end, const struct packet *pkt)
{
	if (!capture_cfg.enabled)
		return 0;
	__u8 *doff = data + pkt->tcp_off + 12;
	if ((void *)(doff + 1) > data_end)
		return 0;
	return (__u32)pkt->tcp_off + (*doff >> 4) * 4;
}

/*
 * What the caller's ctx is. XDP has two entry points: a global function is
 * verified even where no call to it can run, and capture_xdp's helpers
 * are 5.18's, so the plain XDP program (tcplens_xdp) must not call it at
 * all for the rest of the packet path to load on older kernels; user
 * space loads tcplens_xdp_capture instead when it captures.
 */
#define CAPTURE_CTX_SKB 0
#define CAPTURE_CTX_XDP 1         /* XDP, never capturing */
#define CAPTURE_CTX_XDP_CAPTURE 2 /* XDP, capturing when capture_cfg says */

/*
 * capture_packet hands a packet that passed the filter to the stage, with
 * its capture_hdrs_len.
 */
static __always_inline void capture_packet(void *ctx, int kind, __u32 hdrs_len, __u32 slot, int dir)
{
	if (!capture_cfg.enabled || kind == CAPTURE_CTX_XDP)
		return;
	if (kind == CAPTURE_CTX_XDP_CAPTURE)
		capture_xdp(ctx, hdrs_len, slot, dir);
	else
		capture_skb(ctx, hdrs_len, slot, dir);
}
