/*
 * XXH64 (seed 0), written from the algorithm's public specification (xxhash.com, "xxHash
 * fast digest algorithm", XXH64 section). It checksums every image file so that a damaged
 * or truncated image is refused before restore touches anything. Streaming, because page
 * files can be gigabytes and are never held in memory whole.
 */
#include <endian.h>
#include <string.h>

#include "image/img.h"
#include "util/util.h"

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

#define STRIPE 32	/* four 8-byte lanes, one per accumulator */

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

/* Lanes are little-endian whatever the host; memcpy because input need not be aligned. */
static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t lane)
{
	acc += lane * P2;
	acc = rotl64(acc, 31);
	return acc * P1;
}

static inline uint64_t xxh_merge(uint64_t h, uint64_t acc)
{
	h ^= xxh_round(0, acc);
	return h * P1 + P4;
}

static void consume_stripe(uint64_t v[4], const uint8_t *p)
{
	v[0] = xxh_round(v[0], get64(p));
	v[1] = xxh_round(v[1], get64(p + 8));
	v[2] = xxh_round(v[2], get64(p + 16));
	v[3] = xxh_round(v[3], get64(p + 24));
}

void xxh64_init(struct xxh64_state *st)
{
	memset(st, 0, sizeof(*st));
	/* Seed 0: the spec's seed + PRIME terms reduce to these (v[3] wraps around). */
	st->v[0] = P1 + P2;
	st->v[1] = P2;
	st->v[2] = 0;
	st->v[3] = -P1;
}

void xxh64_update(struct xxh64_state *st, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t fill;

	st->total += len;
	/* Top up a partial stripe kept from the last call first. */
	if (st->memsize) {
		fill = MIN(STRIPE - st->memsize, len);
		memcpy(st->mem + st->memsize, p, fill);
		st->memsize += fill;
		p += fill;
		len -= fill;
		if (st->memsize < STRIPE)
			return;
		consume_stripe(st->v, st->mem);
		st->memsize = 0;
	}
	for (; len >= STRIPE; p += STRIPE, len -= STRIPE)
		consume_stripe(st->v, p);
	memcpy(st->mem, p, len);
	st->memsize = len;
}

/* The tail (under 32 bytes) and the final avalanche, per the spec. */
static uint64_t xxh_finish(uint64_t h, const uint8_t *p, size_t len)
{
	for (; len >= 8; p += 8, len -= 8) {
		h ^= xxh_round(0, get64(p));
		h = rotl64(h, 27) * P1 + P4;
	}
	if (len >= 4) {
		h ^= (uint64_t)get32(p) * P1;
		h = rotl64(h, 23) * P2 + P3;
		p += 4;
		len -= 4;
	}
	for (; len; p++, len--) {
		h ^= *p * P5;
		h = rotl64(h, 11) * P1;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t xxh64_digest(const struct xxh64_state *st)
{
	const uint64_t *v = st->v;
	uint64_t h;

	if (st->total >= STRIPE) {
		h = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18);
		h = xxh_merge(h, v[0]);
		h = xxh_merge(h, v[1]);
		h = xxh_merge(h, v[2]);
		h = xxh_merge(h, v[3]);
	} else {
		h = P5;	/* seed + PRIME64_5 */
	}
	h += st->total;
	return xxh_finish(h, st->mem, st->memsize);
}

uint64_t xxh64(const void *data, size_t len)
{
	struct xxh64_state st;

	xxh64_init(&st);
	xxh64_update(&st, data, len);
	return xxh64_digest(&st);
}
