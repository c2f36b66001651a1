/*
 * Page data in independent zstd chunks (format in zchunk.h). The checksum of the inventory
 * covers the file as stored, compressed bytes and headers alike, through img_write_raw and
 * img_read_raw.
 */
#define LOG_PREFIX "image: "
#include "image/zchunk.h"
#include "image/img.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "util/log.h"
#include "util/util.h"

struct zchunk_writer {
	ZSTD_CCtx *cctx;
	int level;
	uint8_t *out;			/* header + compressed payload of one chunk */
	size_t out_cap;
};

struct zchunk_reader {
	struct img *img;
	ZSTD_DCtx *dctx;
	uint8_t *in;			/* one stored payload */
	uint8_t *raw;			/* one decompressed chunk, when it is read out in pieces */
	size_t raw_len;			/* bytes in raw */
	size_t raw_pos;			/* bytes of raw already handed out */
};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

struct zchunk_writer *zchunk_writer_new(int level)
{
	struct zchunk_writer *zw = xzalloc(sizeof(*zw));

	if (!zw)
		return NULL;
	zw->level = level;
	zw->cctx = ZSTD_createCCtx();
	zw->out_cap = ZCHUNK_HDR + ZSTD_compressBound(ZCHUNK_RAW);
	zw->out = xmalloc(zw->out_cap);
	if (!zw->cctx || !zw->out) {
		zchunk_writer_free(zw);
		return NULL;
	}
	return zw;
}

void zchunk_writer_free(struct zchunk_writer *zw)
{
	if (!zw)
		return;
	ZSTD_freeCCtx(zw->cctx);
	free(zw->out);
	free(zw);
}

/* One chunk: compressed, or stored as it is when compression would not make it smaller. */
static int write_chunk(struct zchunk_writer *zw, struct img *img, const uint8_t *data, size_t len)
{
	size_t n = ZSTD_compressCCtx(zw->cctx, zw->out + ZCHUNK_HDR, zw->out_cap - ZCHUNK_HDR,
				     data, len, zw->level);
	int ret;

	if (ZSTD_isError(n)) {
		pr_err("%s: zstd compression failed: %s", img_name(img), ZSTD_getErrorName(n));
		return -EIO;
	}
	if (n >= len) {
		put_le32(zw->out, len);
		put_le32(zw->out + 4, len);
		ret = img_write_raw(img, zw->out, ZCHUNK_HDR);
		return ret ?: img_write_raw(img, data, len);
	}
	put_le32(zw->out, n);
	put_le32(zw->out + 4, len);
	return img_write_raw(img, zw->out, ZCHUNK_HDR + n);
}

int zchunk_write(struct zchunk_writer *zw, struct img *img, const void *data, size_t len)
{
	const uint8_t *p = data;
	int ret = 0;

	for (size_t off = 0; !ret && off < len; off += ZCHUNK_RAW)
		ret = write_chunk(zw, img, p + off, MIN(len - off, (size_t)ZCHUNK_RAW));
	return ret;
}

struct zchunk_reader *zchunk_reader_new(struct img *img)
{
	struct zchunk_reader *zr = xzalloc(sizeof(*zr));

	if (!zr)
		return NULL;
	zr->img = img;
	zr->dctx = ZSTD_createDCtx();
	zr->in = xmalloc(ZSTD_compressBound(ZCHUNK_RAW));
	zr->raw = xmalloc(ZCHUNK_RAW);
	if (!zr->dctx || !zr->in || !zr->raw) {
		zchunk_reader_free(zr);
		return NULL;
	}
	return zr;
}

void zchunk_reader_free(struct zchunk_reader *zr)
{
	if (!zr)
		return;
	ZSTD_freeDCtx(zr->dctx);
	free(zr->in);
	free(zr->raw);
	free(zr);
}

/* Chunks that do not shrink are stored as they are, so stored never exceeds raw. */
static bool header_ok(uint32_t stored, uint32_t raw)
{
	return raw && raw <= ZCHUNK_RAW && stored && stored <= raw;
}

/* Reads the next chunk's header; checks it before anything is allocated or read by it. */
static int next_header(struct zchunk_reader *zr, uint32_t *stored, uint32_t *raw)
{
	uint8_t hdr[ZCHUNK_HDR];
	int ret = img_read_raw(zr->img, hdr, sizeof(hdr));

	if (ret)
		return ret;
	*stored = get_le32(hdr);
	*raw = get_le32(hdr + 4);
	if (!header_ok(*stored, *raw)) {
		pr_err("%s: bad compressed chunk header (stored %u, raw %u bytes)",
		       img_name(zr->img), *stored, *raw);
		return -EINVAL;
	}
	return 0;
}

/* Decompresses the next chunk into dest (room for ZCHUNK_RAW bytes); its size in *len. */
static int read_chunk(struct zchunk_reader *zr, uint8_t *dest, size_t room, size_t *len)
{
	uint32_t stored, raw;
	size_t n;
	int ret = next_header(zr, &stored, &raw);

	if (ret)
		return ret;
	if (raw > room)
		dest = zr->raw;
	if (stored == raw) {
		ret = img_read_raw(zr->img, dest, raw);
		n = raw;
	} else {
		ret = img_read_raw(zr->img, zr->in, stored);
		n = ret ? 0 : ZSTD_decompressDCtx(zr->dctx, dest, raw, zr->in, stored);
	}
	if (ret)
		return ret;
	if (ZSTD_isError(n) || n != raw) {
		pr_err("%s: a compressed chunk does not decompress to its %u bytes: %s",
		       img_name(zr->img), raw, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
		return -EINVAL;
	}
	*len = n;
	return dest == zr->raw ? 1 : 0;
}

int zchunk_read(struct zchunk_reader *zr, void *dest, size_t len)
{
	uint8_t *out = dest;

	while (len) {
		size_t n = MIN(len, zr->raw_len - zr->raw_pos);
		int ret;

		if (n) {
			memcpy(out, zr->raw + zr->raw_pos, n);
			zr->raw_pos += n;
			out += n;
			len -= n;
			continue;
		}
		/* Whole chunks go straight to the destination; a chunk split across two
		 * destinations is decompressed once into the bounce buffer. */
		ret = read_chunk(zr, out, len, &n);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			zr->raw_len = n;
			zr->raw_pos = 0;
		} else {
			out += n;
			len -= n;
		}
	}
	return 0;
}

int zchunk_scan(int fd, uint64_t size, uint64_t *nr_chunks, uint64_t *raw_size)
{
	uint64_t off = 0, chunks = 0, raw_total = 0;

	while (off < size) {
		uint8_t hdr[ZCHUNK_HDR];
		uint32_t stored, raw;

		if (size - off < ZCHUNK_HDR || pread(fd, hdr, sizeof(hdr), off) != sizeof(hdr))
			return -EINVAL;
		stored = get_le32(hdr);
		raw = get_le32(hdr + 4);
		if (!header_ok(stored, raw) || stored > size - off - ZCHUNK_HDR)
			return -EINVAL;
		off += ZCHUNK_HDR + stored;
		raw_total += raw;
		chunks++;
	}
	*nr_chunks = chunks;
	*raw_size = raw_total;
	return 0;
}
