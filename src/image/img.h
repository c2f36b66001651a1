/*
 * The image directory: record files (a magic number, then length-prefixed protobuf-c
 * messages), raw page files, and inventory.img, written last with every other file's size
 * and XXH64, so that a half-written or damaged image is refused before anything is restored.
 */
#ifndef CREST_IMAGE_IMG_H
#define CREST_IMAGE_IMG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "inventory.pb-c.h"

/* Bump when an older crest could no longer read what this one writes. */
#define IMG_FORMAT_VERSION 1

/* Every record file starts with one of these (little-endian u32). Raw page files have none. */
enum img_magic {
	IMG_MAGIC_INVENTORY = 0x43524901,	/* "\1IRC" */
	IMG_MAGIC_PSTREE    = 0x43524902,
	IMG_MAGIC_CORE      = 0x43524903,
	IMG_MAGIC_MM        = 0x43524904,
	IMG_MAGIC_PAGEMAP   = 0x43524905,
	IMG_MAGIC_FILES     = 0x43524906,
	IMG_MAGIC_FDINFO    = 0x43524907,
	IMG_MAGIC_PIPE_DATA = 0x43524908,
	IMG_MAGIC_NS        = 0x43524909,	/* ns.img: the tree's own namespaces */
	IMG_MAGIC_IPC_VAR   = 0x43524920,	/* ipc-var.img: sysctls of the tree's ipc namespace */
	IMG_MAGIC_IPC_SHM   = 0x43524921,	/* ipc-shm.img: SysV shared memory segments */
	IMG_MAGIC_IPC_SEM   = 0x43524922,	/* ipc-sem.img: SysV semaphore sets */
	IMG_MAGIC_IPC_MSG   = 0x43524923,	/* ipc-msg.img: SysV message queues */
	IMG_MAGIC_IPC_MQ    = 0x43524924,	/* ipc-mq.img: POSIX message queues */
	IMG_MAGIC_RAW       = 0,		/* pages-*.img: raw, page-aligned data */
};

struct img_dir;	/* an open image directory */
struct img;	/* one open file inside it */

/*
 * Opens (creating if needed, 0700) an image directory for a dump. Any stale inventory.img is
 * removed first, so a dump that fails leaves a directory restore refuses.
 */
int imgdir_open_write(const char *path, struct img_dir **ret);
/*
 * Opens an image directory for restore or show: reads inventory.img, checks its magic, format
 * version and checksum list. Errors name the file and what is wrong.
 */
int imgdir_open_read(const char *path, struct img_dir **ret);
/* The inventory read by imgdir_open_read (owned by the dir). */
const Inventory *imgdir_inventory(const struct img_dir *dir);
const char *imgdir_path(const struct img_dir *dir);
int imgdir_fd(const struct img_dir *dir);
/* Write side: whether file name was written (and closed) through dir in this session. */
bool imgdir_written(const struct img_dir *dir, const char *name);
/*
 * Completes a dump: fills inv->files from every file created through this dir (size and
 * XXH64 of each), writes inventory.img last (via a temporary name and rename) and fsyncs.
 */
int imgdir_finish(struct img_dir *dir, Inventory *inv);
void imgdir_close(struct img_dir *dir);
/*
 * Dump: the zstd level for page data written into dir (0: none, the default). Page writers
 * ask; the setting lives with the directory so that every kind of page file gets it.
 */
void imgdir_set_compress(struct img_dir *dir, int level);
int imgdir_compress(const struct img_dir *dir);

/*
 * Restore: checks every raw file (pages-*.img) against the inventory on a thread of its own
 * (verify.c), and from now on img_read_raw() of those files in this process and in the
 * processes it forks skips the checksum. Nothing read may be let run before
 * imgdir_verify_finish() returned 0 (else it logs which file is damaged).
 */
struct img_verify;
int imgdir_verify_start(struct img_dir *dir, struct img_verify **ret);
int imgdir_verify_finish(struct img_verify *v);
/* For verify.c: raw files are checked elsewhere; img_open() turns their checksum off. */
void imgdir_raw_verified_elsewhere(struct img_dir *dir);

/*
 * Creates file NAME (printf format) in dir for writing, mode 0600. For a record file, magic
 * is written first; for IMG_MAGIC_RAW nothing is. The checksum is kept as data is written.
 */
struct img *img_create(struct img_dir *dir, uint32_t magic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Opens file NAME for reading. The file must be listed in the inventory with the same size;
 * a record file is checked against its XXH64 at once and its magic must match. Returns NULL
 * with errno = ENOENT when the inventory does not list it (callers decide if that is fine),
 * or another errno after logging what is wrong.
 */
struct img *img_open(struct img_dir *dir, uint32_t magic, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Closes; for a file being written, records its size and checksum for the inventory. */
int img_close(struct img *img);
const char *img_name(const struct img *img);
/* The underlying descriptor (raw page files are read with pread/read into premapped memory). */
int img_fd(const struct img *img);
/* Size of the file as listed in the inventory (read) or written so far (write). */
uint64_t img_size(const struct img *img);

/* Appends one record. */
int img_write_msg(struct img *img, const ProtobufCMessage *msg);
/*
 * Reads the next record of type desc. Returns 0 with *ret set, 0 with *ret = NULL at the end
 * of the file, or -errno after logging (truncated record, undecodable message).
 */
int img_read_msg(struct img *img, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret);
/*
 * Reads every remaining record of type desc into a new array (*ret, *nr; an empty file
 * gives NULL and 0). Free with img_free_all.
 */
int img_read_all(struct img *img, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage ***ret, size_t *nr);
void img_free_all(ProtobufCMessage **msgs, size_t nr);
#define img_read_rest(img, type, ret, nr) \
	img_read_all((img), &type##__descriptor, (ProtobufCMessage ***)(ret), (nr))
/* Convenience wrappers for generated types: img_read(img, pstree_entry, &e). */
#define img_read(img, type, ret) \
	img_read_msg((img), &type##__descriptor, (ProtobufCMessage **)(ret))
#define img_free(type, msg) type##__free_unpacked((msg), NULL)

/* Raw data (pages): appends len bytes; the checksum is updated. */
int img_write_raw(struct img *img, const void *buf, size_t len);
/*
 * Reads len bytes of a raw file into buf, sequentially, verifying the checksum when the last
 * byte is read. Returns 0, or -errno (EIO with a message naming the file on a bad checksum).
 */
int img_read_raw(struct img *img, void *buf, size_t len);
/* img_read_raw into several buffers with one readv() (at most IOV_MAX of them). */
struct iovec;
int img_read_rawv(struct img *img, const struct iovec *iov, size_t nr);

/* XXH64 with seed 0, incrementally. */
struct xxh64_state {
	uint64_t v[4];
	uint64_t total;
	uint8_t mem[32];
	uint32_t memsize;
};
void xxh64_init(struct xxh64_state *st);
void xxh64_update(struct xxh64_state *st, const void *data, size_t len);
uint64_t xxh64_digest(const struct xxh64_state *st);
uint64_t xxh64(const void *data, size_t len);

/*
 * For `crest show`: the protobuf descriptor of the records in a file of this magic (the first
 * record type for files that hold a head record then entries), or NULL.
 */
const ProtobufCMessageDescriptor *img_magic_head_desc(uint32_t magic);
const ProtobufCMessageDescriptor *img_magic_entry_desc(uint32_t magic);

#endif
