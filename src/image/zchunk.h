/*
 * Compressed page data (`crest dump --compress`): a raw file made of independent zstd
 * chunks, each a small header and its payload:
 *
 *   u32 stored   bytes of payload that follow (little endian)
 *   u32 raw      bytes the chunk holds once decompressed (at most ZCHUNK_RAW)
 *   stored bytes: a zstd frame, or the raw bytes themselves when stored == raw
 *
 * Chunks are compressed independently, so a reader that wants one page walks the headers
 * (8 bytes per ZCHUNK_RAW of data) to the chunk that holds it and decompresses only that.
 */
#ifndef CREST_IMAGE_ZCHUNK_H
#define CREST_IMAGE_ZCHUNK_H

#include <stddef.h>
#include <stdint.h>

struct img;

#define ZCHUNK_RAW (1U << 20)	/* uncompressed bytes per chunk */
#define ZCHUNK_HDR 8

/* Compressor state of one writer (not thread-safe: one per writing thread). */
struct zchunk_writer;
struct zchunk_writer *zchunk_writer_new(int level);
void zchunk_writer_free(struct zchunk_writer *zw);
/* Appends len bytes to img as chunks of at most ZCHUNK_RAW bytes each. */
int zchunk_write(struct zchunk_writer *zw, struct img *img, const void *data, size_t len);

/* Sequential reader: decompresses chunk after chunk, into whatever destinations it is given. */
struct zchunk_reader;
struct zchunk_reader *zchunk_reader_new(struct img *img);
void zchunk_reader_free(struct zchunk_reader *zr);
/* Fills dest with the next len bytes of decompressed data. Errors name the file. */
int zchunk_read(struct zchunk_reader *zr, void *dest, size_t len);

/*
 * Walks the chunk headers of a file of size bytes open at fd, without reading payloads:
 * 0 with the number of chunks and the decompressed size when they chain exactly to the end
 * of the file, -EINVAL when they do not (then it is not a chunked file, or it is damaged).
 */
int zchunk_scan(int fd, uint64_t size, uint64_t *nr_chunks, uint64_t *raw_size);

#endif
