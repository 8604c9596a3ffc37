/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The guard stage of the packet path: XDP/TC drop policy for incoming TCP.
 *
 * Precedence (the first that decides wins):
 *   1. allow CIDR   never dropped by the rules below
 *   2. block CIDR   longest-prefix match, IPv4 and IPv6 in one trie each
 *   3. port rules   drop_port (all TCP to the port), drop_syn_port (SYN
 *                   without ACK to the port); then options: require_mss
 *                   (a SYN without ACK carrying no MSS option), drop_sigs
 *                   (a SYN whose options signature is listed)
 *   4. per source   a source auto-blocked by the scan rule; a token bucket
 *                   for its SYNs (--syn-rate/--syn-burst)
 *   5. global       one token bucket (--syn-rate-global) for the SYNs of
 *                   sources without a per-source entry, or for every SYN
 *                   when no per-source rule is on
 *   6. scan         a source whose SYNs reach scan_ports distinct ports
 *                   within scan_window is blocked for block_for
 *
 * Rules change while running (SIGHUP): every rule lives twice, in set 0
 * and set 1 (the rule struct and a CIDR trie each). User
 * space fills the set not in use, then flips guard_active, one 32-bit
 * store, so each packet is decided by exactly one complete rule set.
 *
 * Per-source state. A spoofed flood brings a new source with nearly every
 * SYN, and an LRU insert with eviction costs about ten empty programs, so a
 * source does not get an entry for being seen. A SYN of a source without an
 * entry must first pass the global bucket (if one is set), then take a
 * token from an admission bucket (guard_rules.admit_*: a few thousand new
 * sources per second); only then is its entry made. Ordinary clients and a
 * scanner arrive far below those rates and get entries at once; a flood of
 * new sources gets entries at most at the smaller of the two rates, each
 * further unknown source costs a bit test in guard_known (a failed hash
 * lookup too where its bit is stale), and the global bucket holds the line
 * for them. A known source costs one lookup and
 * answers to its own bucket only, so the clients a host already knows keep
 * connecting while a spoofed flood drains the global bucket. Its bucket,
 * scan state and block sit in the one entry.
 *
 * Time: bpf_ktime_get_ns(), or in test builds (guard_cfg.fake_clock) the
 * value in guard_clock, so tests of the buckets and the scan window set the
 * time instead of sleeping.
 *
 * Both buckets are GCRA: one 64-bit "theoretical arrival time" per bucket.
 * A SYN conforms if tat - now <= (burst - 1) * interval; it then moves tat
 * to max(tat, now) + interval. The global bucket is shared by all CPUs and
 * updated without a lock: two CPUs racing may both pass one SYN, so the
 * global rate holds within the number of CPUs.
 */
#pragma once

#include "parse.h"

/* guard_rule_counters indexes: what decided a packet. */
enum guard_rule {
	GUARD_ALLOWED = 0,     /* would have been dropped, an allow CIDR passed it */
	GUARD_BLOCK,           /* block CIDR */
	GUARD_DROP_PORT,       /* all TCP to a port */
	GUARD_DROP_SYN_PORT,   /* SYN to a port */
	GUARD_SYN_NO_MSS,      /* SYN without an MSS option */
	GUARD_SYN_SIGNATURE,   /* SYN with a dropped options signature */
	GUARD_SCAN_BLOCKED,    /* SYN of a source auto-blocked by the scan rule */
	GUARD_SYN_RATE,        /* over its source's SYN bucket */
	GUARD_SYN_RATE_GLOBAL, /* over the global SYN bucket */
	GUARD_NR_RULES,
};

/* Per CPU; [rule] counts packets the rule matched (dropped, or would have
 * been in a dry run); the rest is what the stage did besides. */
struct guard_counters {
	__u64 matched[GUARD_NR_RULES];
	__u64 packets;          /* TCP packets the stage looked at */
	__u64 dropped;          /* packets it dropped (0 in a dry run) */
	__u64 scan_blocks;      /* sources auto-blocked */
	__u64 sources_admitted; /* per-source entries made */
	__u64 sources_refused;  /* SYNs of unknown sources without an admission token */
	__u64 sources_full;     /* an entry insert failed */
};

struct guard_config {
	__u8 enabled;    /* run the stage at all */
	__u8 fake_clock; /* test builds: time is guard_clock[0] */
	__u8 coarse_ok;  /* the kernel has bpf_ktime_get_coarse_ns (5.11+) for XDP and TC */
	__u8 pad[5];
};

volatile const struct guard_config guard_cfg = {};

#define GUARD_PORT_WORDS (65536 / 64)
#define GUARD_MAX_SIGS 16
/* Distinct prefix lengths per family that the hash scheme looks up (see
 * guard_cidr_lookup); a family with more uses the trie. */
#define GUARD_HASH_LENS 4
#define GUARD_LEN_NONE 0xff

/* One rule set. Intervals are nanoseconds per token; 0 switches a bucket off. */
struct guard_rules {
	__u8 dry_run;
	__u8 has_cidrs;       /* bit 0: there are IPv4 prefixes, bit 1: IPv6 */
	__u8 sig_count;          /* drop_sigs in use */
	__u8 has_port_rules;  /* drop_port or drop_syn_port have a bit set */
	__u8 require_mss;
	__u8 coarse_clock;    /* time is bpf_ktime_get_coarse_ns() (see guard_now) */
	__u8 cidr_hash;       /* bit 0: IPv4 prefixes are in guard_cidr_hash, not the trie; bit 1: IPv6 */
	__u8 pad;
	__u32 gen;            /* this rule set's number, never 0 nor reused (see guard_cidr_cache) */
	__u32 pad3;
	/* The prefix lengths present in guard_cidr_hash, longest first,
	 * GUARD_LEN_NONE after the last, and each length's mask (the
	 * address's words in wire order, IPv4 in word 0). */
	__u8 lens4[GUARD_HASH_LENS];
	__u8 lens6[GUARD_HASH_LENS];
	__u32 mask4[GUARD_HASH_LENS];
	__u32 mask6[GUARD_HASH_LENS][4];
	__u64 syn_interval;    /* per source: 1e9 / --syn-rate */
	__u64 syn_tolerance;   /* (--syn-burst - 1) * syn_interval */
	__u64 global_interval; /* 1e9 / --syn-rate-global */
	__u64 global_tolerance;
	__u64 admit_interval;  /* new per-source entries */
	__u64 admit_tolerance;
	__u32 scan_ports;      /* distinct ports (0: no scan rule) */
	__u32 pad2;
	__u64 scan_window;     /* ns */
	__u64 block_for;       /* ns */
	__u64 drop_sigs[GUARD_MAX_SIGS]; /* SYN option signatures to drop (see guard_opts_walk) */
	__u64 drop_port[GUARD_PORT_WORDS];
	__u64 drop_syn_port[GUARD_PORT_WORDS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct guard_rules);
} guard_rule_sets SEC(".maps");

/* [0]: the rule set in force (0 or 1). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} guard_active SEC(".maps");

/* Buckets shared by every source: [0] the global SYN bucket's tat, [1] the
 * admission bucket's. Reset (to 0) when rules change. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} guard_buckets SEC(".maps");

/* Test builds: [0] is the time in ns. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} guard_clock SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_counters);
} guard_stats SEC(".maps");

/* LPM key: 8 bits of family (4 or 6) then the address, so one trie holds
 * both families and a v4 prefix never matches a v6 address. */
struct guard_cidr {
	__u32 prefixlen; /* 8 + the CIDR's bits */
	__u8 family;
	__u8 addr[16];
};

/*
 * Allow and block prefixes share one trie, so a packet costs one
 * longest-prefix lookup. The value of the longest match says what holds
 * for the address: BLOCK, ALLOW, or both (ALLOW wins; BLOCK then says what
 * the allow list overrode, for the counters). Prefixes either nest or are
 * disjoint, so user space gets this right by marking a block prefix that
 * lies inside an allow prefix ALLOW|BLOCK, and an allow prefix that lies
 * inside a block prefix ALLOW|BLOCK too.
 */
#define GUARD_CIDR_ALLOW 1
#define GUARD_CIDR_BLOCK 2

#define GUARD_CIDR_TRIE(name)                         \
	struct {                                      \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);  \
		__uint(max_entries, 131072);          \
		__uint(map_flags, BPF_F_NO_PREALLOC); \
		__type(key, struct guard_cidr);       \
		__type(value, __u8);                  \
	} name SEC(".maps")

GUARD_CIDR_TRIE(guard_cidrs0);
GUARD_CIDR_TRIE(guard_cidrs1);

/*
 * The fast scheme for the same prefixes: one exact-match hash entry per
 * prefix, keyed by its masked address and length, looked up once per
 * length present, longest first, so the first hit is the longest match and
 * its value (ALLOW/BLOCK as in the trie) is the answer. Block lists rarely
 * use more than a few lengths per family; the kernel's trie walks one node
 * per branching bit with a compare each, several nodes deep among a
 * thousand prefixes (~80 ns for a hit here), a hash lookup is one hash and
 * one compare. Both rule sets share the map: set is part of the key.
 *
 * In front of it, a bitmap per set (guard_cidr_bits): a prefix's bit is
 * set when user space adds it, so a clear bit says "no prefix of this
 * length here" for a few ns, and an address on no list (nearly every
 * packet) costs no hash lookup at all. A set bit only means "look":
 * collisions cost a lookup, never a wrong verdict.
 */
struct guard_cidr_hkey {
	__u8 set;
	__u8 family;
	__u8 plen;
	__u8 pad;
	__u32 addr[4]; /* masked to plen, wire order */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct guard_cidr_hkey);
	__type(value, __u8);
} guard_cidr_hash SEC(".maps");

#define GUARD_CIDR_BITS 17 /* per set: 2^17 bits, 16 KB */
#define GUARD_CIDR_WORDS (1 << (GUARD_CIDR_BITS - 6))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * GUARD_CIDR_WORDS); /* set 0's words, then set 1's */
	__type(key, __u32);
	__type(value, __u64);
} guard_cidr_bits SEC(".maps");

/*
 * Per CPU, the CIDR answer for the last source looked up: back-to-back
 * packets of one flow (RSS keeps a flow on one CPU) skip the lookup. It
 * caches only what the allow and block lists say, which changes only with
 * the rule set: an entry holds the number (gen) of the rule set it was
 * computed from, and user space numbers every rule set it installs anew,
 * so a reload invalidates every CPU's entry at once. Scan blocks and
 * buckets live in the per-source entry and are never cached.
 */
struct guard_cidr_cache {
	__u32 addr[4];
	__u32 gen; /* 0: empty */
	__u8 family;
	__u8 list;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct guard_cidr_cache);
} guard_cidr_last SEC(".maps");

struct guard_source_key {
	__u8 addr[16];
	__u8 family;
	__u8 pad[3];
};

/* Everything kept about one source (see the comment at the top). */
struct guard_source {
	__u64 syn_tat;       /* its SYN bucket */
	__u64 scan_start;    /* start of its scan window */
	__u64 blocked_until; /* auto-blocked until then (0: never was) */
	__u64 block_started; /* when the current block began (for events) */
	__u64 syns;          /* SYNs seen since the entry was made */
	__u64 scan_bits[4];  /* destination ports seen in the window, by low byte */
	__u32 scan_count;    /* bits set in scan_bits (BPF has no popcount instruction) */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct guard_source_key);
	__type(value, struct guard_source);
} guard_sources SEC(".maps");

/*
 * A bitmap in front of guard_sources: a source with an entry always has
 * its bit set, so a clear bit says "unknown" without the lookup. The
 * lookup is the flood's cost: the LRU's bucket array is 16 bytes per entry
 * (1 MB at 65,536 entries), and a random source's bucket is a cache and TLB
 * miss, ~130 ns here, where this bitmap (128 KB) stays cached. A bit is set
 * before its entry is made and never cleared (eviction is invisible
 * here), so a set bit only means "look": stale bits cost a lookup, never a
 * wrong verdict. 2^20 bits: after 65,536 admissions ~6% are set, after a
 * million 62%, and the saving shrinks in proportion (see BENCHMARKS.md).
 */
#define GUARD_HINT_BITS 20
#define GUARD_HINT_WORDS (1 << (GUARD_HINT_BITS - 6))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GUARD_HINT_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} guard_known SEC(".maps");

/* guard_hint_slot hashes a source to its bit (multiplicative, on the four
 * address words and the family: no jhash of 20 bytes). */
static __always_inline __u32 guard_hint_slot(const struct guard_source_key *k)
{
	__u32 w[4];

	__builtin_memcpy(w, k->addr, sizeof(w));
	__u32 h = (w[0] ^ k->family) * 0x9e3779b1u;
	h = (h ^ w[1]) * 0x85ebca6bu;
	h = (h ^ w[2]) * 0xc2b2ae35u;
	h = (h ^ w[3]) * 0x9e3779b1u;
	return h >> (32 - GUARD_HINT_BITS);
}

/* guard_hint_word returns the bitmap word that holds slot's bit. */
static __always_inline __u64 *guard_hint_word(__u32 slot)
{
	__u32 idx = slot >> 6;
	return bpf_map_lookup_elem(&guard_known, &idx);
}

/*
 * guard_now reads the stage's clock. bpf_ktime_get_ns() reads the TSC,
 * which costs 35-50 ns a call in this VM, more than the rest of a SYN's
 * rules; the coarse clock (the time of the last tick) costs a few ns. A
 * bucket on a clock that steps by a tick still holds its rate if it holds
 * a tick's tokens (burst * interval >= tick): user space sets
 * coarse_clock only when every bucket does (internal/probe/guard.go), and
 * the scan window and blocks are far longer than a tick.
 */
static __always_inline __u64 guard_now(const struct guard_rules *r)
{
	if (guard_cfg.fake_clock) {
		__u32 zero = 0;
		__u64 *t = bpf_map_lookup_elem(&guard_clock, &zero);
		return t ? *t : 0;
	}
	/* coarse_ok is a load-time constant: without the helper this call
	 * is dead code, which the verifier never checks. */
	if (guard_cfg.coarse_ok && r->coarse_clock)
		return bpf_ktime_get_coarse_ns();
	return bpf_ktime_get_ns();
}

/* gcra_take says whether a SYN conforms to the bucket whose tat is at *tat,
 * and charges it if so. */
static __always_inline int gcra_take(__u64 *tat, __u64 now, __u64 interval, __u64 tolerance)
{
	__u64 t = *tat;

	if (t < now)
		t = now;
	if (t - now > tolerance)
		return 0;
	*tat = t + interval;
	return 1;
}

static __always_inline int guard_port_bit(const __u64 *words, __u16 port)
{
	__u64 idx = port >> 6;

	/* clang knows a u16 >> 6 is below GUARD_PORT_WORDS and drops the
	 * mask; 6.1's verifier loses that bound through the stack spill of
	 * the port ("unbounded memory access"). Hiding the value keeps the
	 * mask, which bounds the index for every verifier. */
	asm volatile("" : "+r"(idx));
	idx &= GUARD_PORT_WORDS - 1;
	return (words[idx] >> (port & 63)) & 1;
}

/* guard_cidr_probe looks k up if its bit in the set's bitmap is set, and
 * returns its value (0: absent). */
static __always_inline int guard_cidr_probe(struct guard_cidr_hkey *k)
{
	__u32 h = (k->addr[0] ^ ((__u32)k->family << 8 | k->plen)) * 0x9e3779b1u;
	h = (h ^ k->addr[1]) * 0x85ebca6bu;
	h = (h ^ k->addr[2]) * 0xc2b2ae35u;
	h = (h ^ k->addr[3]) * 0x9e3779b1u;
	__u32 slot = h >> (32 - GUARD_CIDR_BITS);
	__u32 idx = (k->set ? GUARD_CIDR_WORDS : 0) + (slot >> 6);
	__u64 *w = bpf_map_lookup_elem(&guard_cidr_bits, &idx);

	if (w && !((*w >> (slot & 63)) & 1))
		return 0;
	__u8 *v = bpf_map_lookup_elem(&guard_cidr_hash, k);
	return v ? *v : 0;
}

/* guard_cidr_find is the lookup itself: the hash per length, or the trie. */
static __always_inline int guard_cidr_find(const struct guard_rules *r, struct guard_cidr_hkey *k,
					   __u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	int v;

	if (k->family == 4 && (r->cidr_hash & 1)) {
#pragma unroll
		for (int i = 0; i < GUARD_HASH_LENS; i++) {
			if (r->lens4[i] == GUARD_LEN_NONE)
				return 0;
			k->plen = r->lens4[i];
			k->addr[0] = w0 & r->mask4[i];
			v = guard_cidr_probe(k);
			if (v)
				return v;
		}
		return 0;
	}
	if (k->family == 6 && (r->cidr_hash & 2)) {
#pragma unroll
		for (int i = 0; i < GUARD_HASH_LENS; i++) {
			if (r->lens6[i] == GUARD_LEN_NONE)
				return 0;
			k->plen = r->lens6[i];
			k->addr[0] = w0 & r->mask6[i][0];
			k->addr[1] = w1 & r->mask6[i][1];
			k->addr[2] = w2 & r->mask6[i][2];
			k->addr[3] = w3 & r->mask6[i][3];
			v = guard_cidr_probe(k);
			if (v)
				return v;
		}
		return 0;
	}
	/* More lengths than the hash scheme takes: the trie. */
	struct guard_cidr key = {.prefixlen = 8 + (k->family == 4 ? 32 : 128), .family = k->family};
	__u32 w[4] = {w0, w1, w2, w3};
	__builtin_memcpy(key.addr, w, sizeof(w));
	__u8 *val = bpf_map_lookup_elem(k->set ? (void *)&guard_cidrs1 : (void *)&guard_cidrs0, &key);
	return val ? *val : 0;
}

/*
 * guard_cidr_lookup says which list the address's longest match is on
 * (GUARD_CIDR_*, 0: none), from the CPU's last answer when it is for the
 * same address and rule set. A global function, so the verifier checks
 * the unrolled lookups once, not once per path through the parser; the
 * address comes as its four words (wire order, IPv4 in w0), family_set is
 * family << 1 | set.
 */
__attribute__((noinline)) int guard_cidr_lookup(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u32 family_set)
{
	__u32 set = family_set & 1;
	__u8 family = family_set >> 1;
	struct guard_rules *r = bpf_map_lookup_elem(&guard_rule_sets, &set);
	struct guard_cidr_hkey k = {.set = set, .family = family};
	__u32 zero = 0;
	struct guard_cidr_cache *c = bpf_map_lookup_elem(&guard_cidr_last, &zero);

	if (!r)
		return 0;
	/* The rule set's number first: user space writes it after the
	 * lists, so an answer is never filed under a newer set than the one
	 * it came from. */
	__u32 gen = r->gen;
	if (c && c->gen == gen && c->addr[0] == w0 && c->addr[1] == w1 && c->addr[2] == w2 &&
	    c->addr[3] == w3 && c->family == family)
		return c->list;
	int v = guard_cidr_find(r, &k, w0, w1, w2, w3);
	if (c) {
		c->gen = gen;
		c->addr[0] = w0;
		c->addr[1] = w1;
		c->addr[2] = w2;
		c->addr[3] = w3;
		c->family = family;
		c->list = v;
	}
	return v;
}

/*
 * guard_admit makes the entry of a source that has none, if the admission
 * bucket has a token, and returns it (NULL: the source stays unknown).
 */
static __always_inline struct guard_source *guard_admit(struct guard_rules *r, struct guard_counters *gc,
							struct guard_source_key *key, __u64 now)
{
	__u32 one = 1;
	__u64 *admit = bpf_map_lookup_elem(&guard_buckets, &one);

	if (!admit || !gcra_take(admit, now, r->admit_interval, r->admit_tolerance)) {
		gc->sources_refused++;
		return NULL;
	}
	/* The bit first: a CPU that sees the entry must see the bit too. */
	__u32 slot = guard_hint_slot(key);
	__u64 *hint = guard_hint_word(slot);
	if (hint)
		__sync_fetch_and_or(hint, 1ULL << (slot & 63));
	struct guard_source init = {.scan_start = now};
	if (bpf_map_update_elem(&guard_sources, key, &init, BPF_NOEXIST) != 0 &&
	    !bpf_map_lookup_elem(&guard_sources, key)) {
		gc->sources_full++;
		return NULL;
	}
	gc->sources_admitted++;
	return bpf_map_lookup_elem(&guard_sources, key);
}

/*
 * guard_source_rules runs the per-source rules (4 and 6) for a SYN of a
 * source with an entry and returns the rule that drops it, or
 * GUARD_NR_RULES.
 */
static __always_inline int guard_source_rules(struct guard_rules *r, struct guard_counters *gc,
					      struct guard_source *s, __u16 dport, __u64 now)
{
	s->syns++;
	if (s->blocked_until > now)
		return GUARD_SCAN_BLOCKED;

	if (r->scan_ports) {
		/* Signed: after a reload that moved from the precise clock to the
		 * coarse one, now may lag scan_start by up to a tick, which is
		 * not the end of the window. */
		if ((__s64)(now - s->scan_start) > (__s64)r->scan_window) {
			s->scan_start = now;
			s->scan_bits[0] = s->scan_bits[1] = s->scan_bits[2] = s->scan_bits[3] = 0;
			s->scan_count = 0;
		}
		/* The low byte of the port: exact for any ports that differ in it,
		 * as every range of up to 256 consecutive ports does. The count
		 * goes up with each bit newly set, so it is the bitmap's
		 * popcount, which BPF would compute in some 60 instructions. */
		__u32 b = dport & 255;
		__u64 *word = &s->scan_bits[(b >> 6) & 3];
		__u64 bit = 1ULL << (b & 63);
		if (!(*word & bit)) {
			*word |= bit;
			s->scan_count++;
		}
		if (s->scan_count >= r->scan_ports) {
			/* This SYN is the Nth port: it passes, the block starts. */
			s->blocked_until = now + r->block_for;
			s->block_started = now;
			s->scan_start = now;
			s->scan_bits[0] = s->scan_bits[1] = s->scan_bits[2] = s->scan_bits[3] = 0;
			s->scan_count = 0;
			gc->scan_blocks++;
		}
	}
	if (r->syn_interval && !gcra_take(&s->syn_tat, now, r->syn_interval, r->syn_tolerance))
		return GUARD_SYN_RATE;
	return GUARD_NR_RULES;
}

/*
 * TCP options of a SYN as one 64-bit signature (user space formats it
 * like p0f, internal/probe/guardsig.go):
 *   bits 0-29  the kinds in order, 3 bits each (0 ends the list), at most 10
 *   bit 30     truncated or malformed options (the walk stopped there)
 *   bit 31     more than 10 options (the rest not read)
 *   bits 32-47 the MSS value, bits 48-55 the window scale shift
 *   bit 56     an MSS option of length 4 was seen; bit 57 a window scale of length 3
 *   bit 63     not part of the signature: the rule set drops it
 * Read only for SYNs without ACK when a rule needs it.
 */
#define GUARD_OPT_EOL 1
#define GUARD_OPT_NOP 2
#define GUARD_OPT_MSS 3
#define GUARD_OPT_WS 4
#define GUARD_OPT_SACKOK 5
#define GUARD_OPT_TS 6
#define GUARD_OPT_OTHER 7
#define GUARD_OPTS_MAX 10
#define GUARD_OPTS_BAD (1ULL << 30)
#define GUARD_OPTS_MORE (1ULL << 31)
#define GUARD_OPTS_HAS_MSS (1ULL << 56)
#define GUARD_OPTS_HAS_WS (1ULL << 57)
#define GUARD_OPTS_SIG_DROP (1ULL << 63)

static __always_inline __u64 guard_opts_walk(void *data, void *data_end, __u32 tcp_off)
{
	__u64 code = 0;
	int i;

	/* The verifier needs the offset bounded to add it to a packet pointer;
	 * the parser never makes one this large. */
	if (tcp_off > 512)
		return GUARD_OPTS_BAD;
	__u8 *th = data + tcp_off;
	if ((void *)(th + 20) > data_end)
		return GUARD_OPTS_BAD;
	__u32 optlen = (th[12] >> 4) * 4;
	if (optlen < 20)
		return GUARD_OPTS_BAD;
	optlen -= 20; /* at most 40 */
	__u8 *opts = th + 20;
	__u32 off = 0;

#pragma unroll
	for (i = 0; i < GUARD_OPTS_MAX; i++) {
		if (off >= optlen || off >= 40)
			break;
		__u8 *o = opts + off;
		if ((void *)(o + 1) > data_end)
			return code | GUARD_OPTS_BAD;
		__u8 kind = o[0];
		__u64 k;
		if (kind == 0) {
			code |= (__u64)GUARD_OPT_EOL << (3 * i);
			break;
		}
		if (kind == 1) {
			code |= (__u64)GUARD_OPT_NOP << (3 * i);
			off++;
			continue;
		}
		if ((void *)(o + 2) > data_end)
			return code | GUARD_OPTS_BAD;
		__u32 len = o[1];
		if (len < 2 || off + len > optlen)
			return code | GUARD_OPTS_BAD;
		switch (kind) {
		case 2:
			k = GUARD_OPT_MSS;
			if (len == 4) {
				if ((void *)(o + 4) > data_end)
					return code | GUARD_OPTS_BAD;
				code |= GUARD_OPTS_HAS_MSS | (__u64)(((__u32)o[2] << 8) | o[3]) << 32;
			}
			break;
		case 3:
			k = GUARD_OPT_WS;
			if (len == 3) {
				if ((void *)(o + 3) > data_end)
					return code | GUARD_OPTS_BAD;
				code |= GUARD_OPTS_HAS_WS | (__u64)o[2] << 48;
			}
			break;
		case 4: k = GUARD_OPT_SACKOK; break;
		case 8: k = GUARD_OPT_TS; break;
		default: k = GUARD_OPT_OTHER; break;
		}
		code |= k << (3 * i);
		off += len;
	}
	if (i == GUARD_OPTS_MAX && off < optlen && off < 40)
		code |= GUARD_OPTS_MORE;
	return code;
}

/* guard_opts is the walk plus the rule set's signature list: a linear
 * scan of at most GUARD_MAX_SIGS, here where the verifier sees it once. */
static __always_inline __u64 guard_opts(void *data, void *data_end, __u32 tcp_off, __u32 set)
{
	__u64 code = guard_opts_walk(data, data_end, tcp_off);
	struct guard_rules *r = bpf_map_lookup_elem(&guard_rule_sets, &set);

	if (!r)
		return code;
	__u32 n = r->sig_count;
	/* Unrolled: constant offsets into the rule set. As a loop, clang
	 * walks a pointer whose bound 6.1's verifier loses ("unbounded
	 * memory access"). */
#pragma unroll
	for (int i = 0; i < GUARD_MAX_SIGS; i++) {
		if (i < n && r->drop_sigs[i] == code)
			return code | GUARD_OPTS_SIG_DROP;
	}
	return code;
}

/*
 * One global function per hook: the verifier checks the option walk once,
 * not once per path through the parser (an option loop inlined there
 * pushed the program past a million instructions). Packet pointers cannot
 * be arguments of a global function, so each takes its ctx.
 */
__attribute__((noinline)) __u64 guard_syn_opts_xdp(struct xdp_md *xdp, __u32 tcp_off, __u32 set)
{
	return guard_opts((void *)(long)xdp->data, (void *)(long)xdp->data_end, tcp_off, set);
}

__attribute__((noinline)) __u64 guard_syn_opts_skb(struct __sk_buff *skb, __u32 tcp_off, __u32 set)
{
	return guard_opts((void *)(long)skb->data, (void *)(long)skb->data_end, tcp_off, set);
}

/*
 * guard_packet decides one TCP packet that parse_packet() accepted. It
 * returns 1 to drop it.
 */
static __always_inline int guard_packet(void *ctx, int ctx_is_skb, void *data, void *data_end,
					const struct packet *pkt)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&guard_active, &zero);
	struct guard_counters *gc = bpf_map_lookup_elem(&guard_stats, &zero);

	if (!active || !gc)
		return 0;
	__u32 set = *active & 1;
	struct guard_rules *r = bpf_map_lookup_elem(&guard_rule_sets, &set);
	if (!r)
		return 0;
	gc->packets++;

	int conn_attempt = (pkt->flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
	int rule = GUARD_NR_RULES;
	__u32 saddr[4] = {}, daddr[4];

	int has_cidrs = r->has_cidrs & (pkt->family == 4 ? 1 : 2);
	if ((has_cidrs || conn_attempt) && packet_addrs(data, data_end, pkt, (__u8 *)saddr, (__u8 *)daddr) != 0)
		return 0;
	int list = 0;
	if (has_cidrs)
		list = guard_cidr_lookup(saddr[0], saddr[1], saddr[2], saddr[3], (__u32)pkt->family << 1 | set);

	/* Rules 2 and 3 need no state. */
	if (list & GUARD_CIDR_BLOCK)
		rule = GUARD_BLOCK;
	else if (r->has_port_rules && guard_port_bit(r->drop_port, pkt->dport))
		rule = GUARD_DROP_PORT;
	else if (conn_attempt && r->has_port_rules && guard_port_bit(r->drop_syn_port, pkt->dport))
		rule = GUARD_DROP_SYN_PORT;
	else if (conn_attempt && (r->require_mss || r->sig_count)) {
		__u64 opts = ctx_is_skb ? guard_syn_opts_skb(ctx, pkt->tcp_off, set) : guard_syn_opts_xdp(ctx, pkt->tcp_off, set);
		if (r->require_mss && !(opts & GUARD_OPTS_HAS_MSS))
			rule = GUARD_SYN_NO_MSS;
		else if (opts & GUARD_OPTS_SIG_DROP)
			rule = GUARD_SYN_SIGNATURE;
	}

	if (list & GUARD_CIDR_ALLOW) {
		/* 1. The allow list overrides, and says how often it did; an
		 * allowed source's SYNs touch no bucket and no scan state. */
		if (rule != GUARD_NR_RULES)
			gc->matched[GUARD_ALLOWED]++;
		return 0;
	}
	if (rule == GUARD_NR_RULES) {
		if (!conn_attempt || !(r->syn_interval || r->scan_ports || r->global_interval))
			return 0;
		__u64 now = guard_now(r);
		__u64 *global = r->global_interval ? bpf_map_lookup_elem(&guard_buckets, &zero) : NULL;
		if (r->syn_interval || r->scan_ports) {
			/* A known source answers to its own bucket only; an unknown one
			 * must pass the global bucket first, and only then may it get
			 * an entry, so spoofed sources get entries at most at the
			 * global rate. */
			struct guard_source_key key = {.family = pkt->family};
			__builtin_memcpy(key.addr, saddr, sizeof(key.addr));
			__u32 slot = guard_hint_slot(&key);
			__u64 *hint = guard_hint_word(slot);
			struct guard_source *s = NULL;
			if (!hint || (*hint >> (slot & 63)) & 1)
				s = bpf_map_lookup_elem(&guard_sources, &key);
			if (!s) {
				if (global && !gcra_take(global, now, r->global_interval, r->global_tolerance))
					rule = GUARD_SYN_RATE_GLOBAL;
				else
					s = guard_admit(r, gc, &key, now);
			}
			if (s)
				rule = guard_source_rules(r, gc, s, pkt->dport, now);
		} else if (global && !gcra_take(global, now, r->global_interval, r->global_tolerance)) {
			rule = GUARD_SYN_RATE_GLOBAL;
		}
		if (rule >= GUARD_NR_RULES)
			return 0;
	}
	if (rule < 0 || rule >= GUARD_NR_RULES)
		return 0;
	gc->matched[rule]++;
	if (r->dry_run)
		return 0;
	gc->dropped++;
	return 1;
}
