/*
 * The image directory. A dump creates files through imgdir_open_write()/img_create(); each
 * file's size and XXH64 are remembered when it is closed, and imgdir_finish() writes them
 * into inventory.img, last, so that an image without an inventory is known incomplete.
 * A restore opens the directory with imgdir_open_read(), which refuses an image whose
 * inventory is missing, too new, or disagrees with the files present, and img_open() then
 * checks each file's checksum before a single record of it is believed.
 *
 * Record files: u32 magic (little-endian), then records of u32 length (little-endian) and
 * that many bytes of a packed protobuf-c message. Raw files (pages-*.img) are bare data.
 */
#define LOG_PREFIX "img: "

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

#define INVENTORY_NAME	"inventory.img"
#define INVENTORY_TMP	"inventory.img.tmp"
/* Small records are gathered into this much before a write(2); larger raw chunks bypass it. */
#define WBUF_SIZE	(64 * 1024)
#define HDR_SIZE	4	/* the magic, and each record's length, are u32 */

/* A file written through this dir, as it will be listed in the inventory. */
struct img_written {
	char *name;
	uint64_t size;
	uint64_t xxh64;
};

struct img_dir {
	char *path;
	int dfd;			/* O_RDONLY, so that it can be fsynced */
	bool writing;
	/* read side */
	Inventory *inv;			/* unpacked inventory.img */
	InvFile **sorted;		/* inv->files sorted by name, for img_open lookups */
	/* write side */
	struct img_written *written;
	size_t nr_written, cap_written;
	unsigned int nr_open;		/* img_create'd, not yet closed */
	InvFile *inv_files;		/* what imgdir_finish put into inv->files */
	InvFile **inv_ptrs;
	int compress;			/* zstd level for page data; 0: none */
	bool raw_verified;		/* raw files are checked by imgdir_verify_start() */
};

struct img {
	struct img_dir *dir;
	char *name;
	int fd;
	uint32_t magic;
	bool writing;
	int err;			/* first write error: the file will not be listed */
	struct xxh64_state xs;		/* of everything written, or read sequentially */
	uint64_t size;			/* written so far, or listed in the inventory */
	/* write side */
	uint8_t *wbuf;
	size_t wlen;
	/* read side, record files: the whole file, checked */
	uint8_t *data;
	size_t pos;			/* next record's offset in data */
	unsigned int rec_idx;		/* its index, for messages */
	/* read side, raw files */
	uint64_t xxh64;			/* from the inventory */
	uint64_t rpos;			/* offset img_read_raw expects next */
	bool hashing;			/* false once reading went out of order */
};

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Image files are plain names inside the directory; anything else could escape it or
 * clash with the inventory, which this file alone writes.
 */
static bool valid_name(const char *name)
{
	return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..") &&
	       strcmp(name, INVENTORY_NAME) && strcmp(name, INVENTORY_TMP);
}

/* ---------------------------------------------------------------- directory */

static struct img_dir *imgdir_alloc(const char *path, bool writing)
{
	struct img_dir *dir = xzalloc(sizeof(*dir));

	if (!dir)
		return NULL;
	dir->path = xstrdup(path);
	if (!dir->path) {
		free(dir);
		return NULL;
	}
	dir->dfd = -1;
	dir->writing = writing;
	return dir;
}

int imgdir_open_write(const char *path, struct img_dir **ret)
{
	struct img_dir *dir;
	int err;

	if (mkdir(path, 0700) && errno != EEXIST)
		return pr_errno(-errno, "%s: cannot create image directory", path);
	dir = imgdir_alloc(path, true);
	if (!dir)
		return -ENOMEM;
	dir->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir->dfd < 0) {
		err = pr_errno(-errno, "%s: cannot open image directory", path);
		goto out_close;
	}
	/* An inventory left by an earlier dump would vouch for the files this one replaces. */
	if (unlinkat(dir->dfd, INVENTORY_NAME, 0) && errno != ENOENT) {
		err = pr_errno(-errno, "%s/%s: cannot remove the old inventory", path,
			       INVENTORY_NAME);
		goto out_close;
	}
	*ret = dir;
	return 0;
out_close:
	imgdir_close(dir);
	return err;
}

static void free_written(struct img_dir *dir)
{
	size_t i;

	for (i = 0; i < dir->nr_written; i++)
		free(dir->written[i].name);
	free(dir->written);
	free(dir->inv_files);
	free(dir->inv_ptrs);
}

void imgdir_close(struct img_dir *dir)
{
	if (!dir)
		return;
	if (dir->nr_open)
		pr_warn("%s: closed with %u image files still open", dir->path, dir->nr_open);
	free_written(dir);
	free(dir->sorted);
	if (dir->inv)
		inventory__free_unpacked(dir->inv, NULL);
	safe_close(dir->dfd);
	free(dir->path);
	free(dir);
}

void imgdir_set_compress(struct img_dir *dir, int level)
{
	dir->compress = level;
}

int imgdir_compress(const struct img_dir *dir)
{
	return dir->compress;
}

void imgdir_raw_verified_elsewhere(struct img_dir *dir)
{
	dir->raw_verified = true;
}

const Inventory *imgdir_inventory(const struct img_dir *dir)
{
	return dir->inv;
}

const char *imgdir_path(const struct img_dir *dir)
{
	return dir->path;
}

bool imgdir_written(const struct img_dir *dir, const char *name)
{
	for (size_t i = 0; i < dir->nr_written; i++)
		if (!strcmp(dir->written[i].name, name))
			return true;
	return false;
}

int imgdir_fd(const struct img_dir *dir)
{
	return dir->dfd;
}

/* ---------------------------------------------------------------- records in memory */

/*
 * Decodes the record at *pos of buf (a file's whole contents). Returns 0 with *ret NULL at
 * the end, 0 with *ret set and *pos advanced, or -EIO after naming the file and record.
 */
static int parse_record(const char *name, const uint8_t *buf, size_t len, size_t *pos,
			unsigned int idx, const ProtobufCMessageDescriptor *desc,
			ProtobufCMessage **ret)
{
	size_t left = len - *pos;
	ProtobufCMessage *msg;
	uint32_t rlen;

	*ret = NULL;
	if (!left)
		return 0;
	if (left < HDR_SIZE) {
		pr_err("%s: record %u: truncated length (%zu bytes left)", name, idx, left);
		return -EIO;
	}
	rlen = get_le32(buf + *pos);
	if (rlen > left - HDR_SIZE) {
		pr_err("%s: record %u: truncated (%u bytes, %zu left)", name, idx, rlen,
		       left - HDR_SIZE);
		return -EIO;
	}
	msg = protobuf_c_message_unpack(desc, NULL, rlen, buf + *pos + HDR_SIZE);
	if (!msg) {
		pr_err("%s: record %u: cannot decode %u bytes as %s", name, idx, rlen, desc->name);
		return -EIO;
	}
	*pos += HDR_SIZE + rlen;
	*ret = msg;
	return 0;
}

/* ---------------------------------------------------------------- reading the inventory */

static int cmp_inv_file(const void *a, const void *b)
{
	return strcmp((*(InvFile * const *)a)->name, (*(InvFile * const *)b)->name);
}

static int check_inv_names(struct img_dir *dir)
{
	Inventory *inv = dir->inv;
	size_t i;

	for (i = 0; i < inv->n_files; i++) {
		if (!valid_name(inv->files[i]->name)) {
			pr_err("%s: lists an invalid file name \"%s\"", INVENTORY_NAME,
			       inv->files[i]->name);
			return -EINVAL;
		}
	}
	dir->sorted = xmalloc(sizeof(*dir->sorted) * inv->n_files);
	if (!dir->sorted)
		return -ENOMEM;
	if (inv->n_files)	/* inv->files is NULL then, and memcpy wants no NULL */
		memcpy(dir->sorted, inv->files, sizeof(*dir->sorted) * inv->n_files);
	qsort(dir->sorted, inv->n_files, sizeof(*dir->sorted), cmp_inv_file);
	for (i = 1; i < inv->n_files; i++) {
		if (!strcmp(dir->sorted[i - 1]->name, dir->sorted[i]->name)) {
			pr_err("%s: lists %s twice", INVENTORY_NAME, dir->sorted[i]->name);
			return -EINVAL;
		}
	}
	return 0;
}

/* A file's size must be the one the dump listed; say which way it is off. */
static int check_size(const InvFile *f, const struct stat *st)
{
	if ((uint64_t)st->st_size == f->size)
		return 0;
	pr_err("%s: size %lld, inventory says %llu (%s)", f->name, (long long)st->st_size,
	       (unsigned long long)f->size,
	       (uint64_t)st->st_size < f->size ? "truncated" : "changed after the dump");
	return -EIO;
}

/*
 * Every listed file must be there with its listed size: a dump that died half-way, or a
 * copy that was cut short, is caught here, before restore starts. Contents are checked
 * when each file is opened.
 */
static int check_inv_sizes(struct img_dir *dir)
{
	const Inventory *inv = dir->inv;
	struct stat st;
	size_t i;

	for (i = 0; i < inv->n_files; i++) {
		const InvFile *f = inv->files[i];

		if (fstatat(dir->dfd, f->name, &st, 0))
			return pr_errno(-errno, "%s: listed in the inventory, cannot stat",
					f->name);
		if (!S_ISREG(st.st_mode)) {
			pr_err("%s: not a regular file", f->name);
			return -EINVAL;
		}
		if (check_size(f, &st))
			return -EIO;
	}
	return 0;
}

static int check_inv_version(const Inventory *inv)
{
	if (inv->format_version > IMG_FORMAT_VERSION) {
		pr_err("%s: format version %u is newer than this crest supports (%u)",
		       INVENTORY_NAME, inv->format_version, IMG_FORMAT_VERSION);
		return -EINVAL;
	}
	if (inv->format_version == 0) {
		pr_err("%s: format version 0 is invalid", INVENTORY_NAME);
		return -EINVAL;
	}
	return 0;
}

/* Decodes inventory.img's contents: the magic, then exactly one inventory record. */
static int parse_inventory(const uint8_t *buf, size_t len, Inventory **ret)
{
	ProtobufCMessage *msg;
	size_t pos = HDR_SIZE;
	int err;

	if (len < HDR_SIZE || get_le32(buf) != IMG_MAGIC_INVENTORY) {
		pr_err("%s: not a crest inventory (bad magic)", INVENTORY_NAME);
		return -EINVAL;
	}
	err = parse_record(INVENTORY_NAME, buf, len, &pos, 0, &inventory__descriptor, &msg);
	if (err)
		return err;
	if (!msg) {
		pr_err("%s: empty (no inventory record)", INVENTORY_NAME);
		return -EINVAL;
	}
	if (pos != len) {
		pr_err("%s: %zu unexpected bytes after the inventory record", INVENTORY_NAME,
		       len - pos);
		inventory__free_unpacked((Inventory *)msg, NULL);
		return -EINVAL;
	}
	*ret = (Inventory *)msg;
	return 0;
}

static int load_inventory(struct img_dir *dir)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int err;

	buf = (uint8_t *)read_file_at(dir->dfd, INVENTORY_NAME, &len);
	if (!buf && errno == ENOENT) {
		pr_err("%s: missing: %s is not a complete image (no inventory)", INVENTORY_NAME,
		       dir->path);
		return -ENOENT;
	}
	if (!buf)
		return pr_errno(-errno, "%s/%s: cannot read", dir->path, INVENTORY_NAME);
	err = parse_inventory(buf, len, &dir->inv);
	if (err)
		return err;
	err = check_inv_version(dir->inv);
	if (err)
		return err;
	err = check_inv_names(dir);
	if (err)
		return err;
	return check_inv_sizes(dir);
}

int imgdir_open_read(const char *path, struct img_dir **ret)
{
	struct img_dir *dir;
	int err;

	dir = imgdir_alloc(path, false);
	if (!dir)
		return -ENOMEM;
	dir->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir->dfd < 0) {
		err = pr_errno(-errno, "%s: cannot open image directory", path);
		goto out_close;
	}
	err = load_inventory(dir);
	if (err)
		goto out_close;
	*ret = dir;
	return 0;
out_close:
	imgdir_close(dir);
	return err;
}

/* ---------------------------------------------------------------- writing the inventory */

/* Points inv->files at this dir's list of written files (owned by dir). */
static int fill_inv_files(struct img_dir *dir, Inventory *inv)
{
	size_t i, n = dir->nr_written;

	free(dir->inv_files);
	free(dir->inv_ptrs);
	dir->inv_files = xzalloc(sizeof(*dir->inv_files) * n);
	dir->inv_ptrs = xzalloc(sizeof(*dir->inv_ptrs) * n);
	if (!dir->inv_files || !dir->inv_ptrs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		InvFile *f = &dir->inv_files[i];

		inv_file__init(f);
		f->name = dir->written[i].name;
		f->size = dir->written[i].size;
		f->xxh64 = dir->written[i].xxh64;
		dir->inv_ptrs[i] = f;
	}
	inv->n_files = n;
	inv->files = dir->inv_ptrs;
	return 0;
}

/* Writes the whole inventory file to fd and makes it durable. */
static int write_inventory_fd(int fd, const Inventory *inv)
{
	size_t len = inventory__get_packed_size(inv);
	_cleanup_free_ uint8_t *buf = xmalloc(2 * HDR_SIZE + len);
	int err;

	if (!buf)
		return -ENOMEM;
	put_le32(buf, IMG_MAGIC_INVENTORY);
	put_le32(buf + HDR_SIZE, len);
	inventory__pack(inv, buf + 2 * HDR_SIZE);
	err = write_all(fd, buf, 2 * HDR_SIZE + len);
	if (err)
		return pr_errno(err, "%s: cannot write", INVENTORY_TMP);
	if (fsync(fd))
		return pr_errno(-errno, "%s: cannot fsync", INVENTORY_TMP);
	return 0;
}

/*
 * The inventory appears under its name complete or not at all (rename is atomic), and
 * the directory is fsynced so that the rename itself survives a crash. The other files are
 * not fsynced (that would wait for gigabytes of pages to reach the disk): if a crash tears
 * one, its size or checksum refuses the image at restore, rather than restoring garbage.
 */
static int write_inventory(struct img_dir *dir, const Inventory *inv)
{
	int fd, err;

	fd = openat(dir->dfd, INVENTORY_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return pr_errno(-errno, "%s/%s: cannot create", dir->path, INVENTORY_TMP);
	err = write_inventory_fd(fd, inv);
	close(fd);
	if (err)
		goto out_unlink;
	if (renameat(dir->dfd, INVENTORY_TMP, dir->dfd, INVENTORY_NAME)) {
		err = pr_errno(-errno, "%s: cannot rename to %s", INVENTORY_TMP, INVENTORY_NAME);
		goto out_unlink;
	}
	if (fsync(dir->dfd))
		return pr_errno(-errno, "%s: cannot fsync the image directory", dir->path);
	return 0;
out_unlink:
	unlinkat(dir->dfd, INVENTORY_TMP, 0);
	return err;
}

int imgdir_finish(struct img_dir *dir, Inventory *inv)
{
	int err;

	if (!dir->writing) {
		pr_err("%s: not opened for writing", dir->path);
		return -EBADF;
	}
	/* A file still open may not be complete: listing it would vouch for a torn file. */
	if (dir->nr_open) {
		pr_err("%s: %u image files still open, the inventory would be incomplete",
		       dir->path, dir->nr_open);
		return -EBUSY;
	}
	/* The version is the writer's, which only this layer knows. */
	inv->format_version = IMG_FORMAT_VERSION;
	err = fill_inv_files(dir, inv);
	if (err)
		return err;
	return write_inventory(dir, inv);
}

/* ---------------------------------------------------------------- one file */

static struct img *img_alloc(struct img_dir *dir, uint32_t magic, const char *fmt,
			     va_list ap)
{
	struct img *img = xzalloc(sizeof(*img));

	if (!img)
		return NULL;
	if (vasprintf(&img->name, fmt, ap) < 0) {
		pr_err("cannot format an image file name");
		free(img);
		return NULL;
	}
	img->dir = dir;
	img->magic = magic;
	img->fd = -1;
	img->hashing = true;
	xxh64_init(&img->xs);
	return img;
}

static void img_destroy(struct img *img)
{
	safe_close(img->fd);
	free(img->wbuf);
	free(img->data);
	free(img->name);
	free(img);
}

const char *img_name(const struct img *img)
{
	return img->name;
}

int img_fd(const struct img *img)
{
	return img->fd;
}

uint64_t img_size(const struct img *img)
{
	return img->size;
}

/* ---------------------------------------------------------------- writing one file */

/* Writes out what is buffered; a failure poisons the file so that it is never listed. */
static int img_flush(struct img *img)
{
	int err;

	if (img->err || !img->wlen)
		return img->err;
	err = write_all(img->fd, img->wbuf, img->wlen);
	img->wlen = 0;
	if (err)
		img->err = pr_errno(err, "%s: cannot write", img->name);
	return img->err;
}

/* Makes room for len more bytes in the write buffer (len <= WBUF_SIZE). */
static int img_wbuf_room(struct img *img, size_t len)
{
	if (!img->wbuf) {
		img->wbuf = xmalloc(WBUF_SIZE);
		if (!img->wbuf)
			return img->err = -ENOMEM;
	}
	if (img->wlen + len > WBUF_SIZE)
		return img_flush(img);
	return img->err;
}

/*
 * Appends bytes to the file, keeping the checksum. Large chunks (pages) go to write(2)
 * directly: copying gigabytes through a buffer would only cost time.
 */
static int img_emit(struct img *img, const void *data, size_t len)
{
	int err;

	if (img->err)
		return img->err;
	xxh64_update(&img->xs, data, len);
	img->size += len;
	if (len >= WBUF_SIZE) {
		err = img_flush(img);
		if (err)
			return err;
		err = write_all(img->fd, data, len);
		if (err)
			img->err = pr_errno(err, "%s: cannot write %zu bytes", img->name, len);
		return img->err;
	}
	err = img_wbuf_room(img, len);
	if (err)
		return err;
	memcpy(img->wbuf + img->wlen, data, len);
	img->wlen += len;
	return 0;
}

static struct img *img_create_file(struct img_dir *dir, struct img *img)
{
	uint8_t hdr[HDR_SIZE];

	/*
	 * A fresh inode, not O_TRUNC of whatever is there: an old file may be a hard link to
	 * something outside the image, or have a wider mode than the 0600 secrets need.
	 */
	if (unlinkat(dir->dfd, img->name, 0) && errno != ENOENT) {
		pr_perror("%s/%s: cannot remove the old file", dir->path, img->name);
		return NULL;
	}
	img->fd = openat(dir->dfd, img->name,
			 O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (img->fd < 0) {
		pr_perror("%s/%s: cannot create", dir->path, img->name);
		return NULL;
	}
	if (img->magic != IMG_MAGIC_RAW) {
		put_le32(hdr, img->magic);
		if (img_emit(img, hdr, sizeof(hdr))) {
			errno = -img->err;
			return NULL;
		}
	}
	return img;
}

struct img *img_create(struct img_dir *dir, uint32_t magic, const char *fmt, ...)
{
	struct img *img;
	va_list ap;
	int saved;

	va_start(ap, fmt);
	img = img_alloc(dir, magic, fmt, ap);
	va_end(ap);
	if (!img) {
		errno = ENOMEM;
		return NULL;
	}
	img->writing = true;
	if (!dir->writing || !valid_name(img->name)) {
		pr_err("%s: cannot create %s: %s", dir->path, img->name, dir->writing ?
		       "not a plain image file name" : "directory opened for reading");
		errno = dir->writing ? EINVAL : EBADF;
		goto out_destroy;
	}
	if (!img_create_file(dir, img))
		goto out_destroy;
	dir->nr_open++;
	return img;
out_destroy:
	saved = errno;
	img_destroy(img);
	errno = saved;
	return NULL;
}

int img_write_msg(struct img *img, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	_cleanup_free_ uint8_t *big = NULL;
	uint8_t *p;
	int err;

	if (!img->writing || img->magic == IMG_MAGIC_RAW || len > UINT32_MAX) {
		pr_err("%s: cannot write a %zu-byte %s record here", img->name, len,
		       msg->descriptor->name);
		return -EINVAL;
	}
	if (HDR_SIZE + len > WBUF_SIZE) {
		/* Rare (pipe data, big xsave): pack aside, img_emit writes it directly. */
		big = xmalloc(HDR_SIZE + len);
		if (!big)
			return -ENOMEM;
		put_le32(big, len);
		protobuf_c_message_pack(msg, big + HDR_SIZE);
		return img_emit(img, big, HDR_SIZE + len);
	}
	/* The common case: pack in place in the write buffer, no copy. */
	err = img_wbuf_room(img, HDR_SIZE + len);
	if (err)
		return err;
	p = img->wbuf + img->wlen;
	put_le32(p, len);
	protobuf_c_message_pack(msg, p + HDR_SIZE);
	xxh64_update(&img->xs, p, HDR_SIZE + len);
	img->wlen += HDR_SIZE + len;
	img->size += HDR_SIZE + len;
	return 0;
}

int img_write_raw(struct img *img, const void *buf, size_t len)
{
	if (!img->writing || img->magic != IMG_MAGIC_RAW) {
		pr_err("%s: not a raw file opened for writing", img->name);
		return -EINVAL;
	}
	return img_emit(img, buf, len);
}

/* Remembers a finished file for the inventory; a file created twice is listed once. */
static int record_written(struct img_dir *dir, struct img *img)
{
	struct img_written *w = NULL;
	size_t i;
	int err;

	for (i = 0; i < dir->nr_written && !w; i++)
		if (!strcmp(dir->written[i].name, img->name))
			w = &dir->written[i];
	if (!w) {
		err = xgrow((void **)&dir->written, &dir->cap_written, dir->nr_written + 1,
			    sizeof(*dir->written));
		if (err)
			return err;
		w = &dir->written[dir->nr_written++];
		w->name = img->name;
		img->name = NULL;	/* now owned by dir */
	}
	w->size = img->size;
	w->xxh64 = xxh64_digest(&img->xs);
	return 0;
}

/*
 * Flushes and checks that the file holds exactly what went through img_emit: bytes
 * written to img_fd() directly would make the listed checksum a lie.
 */
static int img_close_write(struct img *img)
{
	struct stat st;
	int err;

	err = img_flush(img);
	if (err)
		return err;
	if (fstat(img->fd, &st))
		return pr_errno(-errno, "%s: cannot stat", img->name);
	if ((uint64_t)st.st_size != img->size) {
		pr_err("%s: size %lld, but %llu bytes were written through the image layer",
		       img->name, (long long)st.st_size, (unsigned long long)img->size);
		return -EIO;
	}
	/* close(2) is where some filesystems (NFS) report a failed write. */
	err = close(img->fd) ? pr_errno(-errno, "%s: cannot close", img->name) : 0;
	img->fd = -1;
	if (err)
		return err;
	return record_written(img->dir, img);
}

int img_close(struct img *img)
{
	int err = 0;

	if (!img)
		return 0;
	if (img->writing) {
		err = img_close_write(img);
		img->dir->nr_open--;
	}
	img_destroy(img);
	return err;
}

/* ---------------------------------------------------------------- reading one file */

static const InvFile *inv_lookup(const struct img_dir *dir, const char *name)
{
	InvFile key = { .name = (char *)name }, *pkey = &key, **found;

	found = bsearch(&pkey, dir->sorted, dir->inv->n_files, sizeof(*dir->sorted),
			cmp_inv_file);
	return found ? *found : NULL;
}

/* Reads a whole record file and checks it before any record is trusted. */
static int img_load_records(struct img *img)
{
	int err;

	if (img->size < HDR_SIZE) {
		pr_err("%s: %llu bytes, too short for a record file", img->name,
		       (unsigned long long)img->size);
		return -EIO;
	}
	img->data = xmalloc(img->size);
	if (!img->data)
		return -ENOMEM;
	err = pread_all(img->fd, img->data, img->size, 0);
	if (err)
		return pr_errno(err, "%s: cannot read %llu bytes", img->name,
				(unsigned long long)img->size);
	if (xxh64(img->data, img->size) != img->xxh64) {
		pr_err("%s: checksum mismatch (image damaged)", img->name);
		return -EIO;
	}
	if (get_le32(img->data) != img->magic) {
		pr_err("%s: magic 0x%08x, expected 0x%08x (not this kind of image file)",
		       img->name, get_le32(img->data), img->magic);
		return -EINVAL;
	}
	img->pos = HDR_SIZE;
	return 0;
}

static int img_open_file(struct img *img, const InvFile *f)
{
	struct stat st;

	img->fd = openat(img->dir->dfd, img->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (img->fd < 0)
		return pr_errno(-errno, "%s: cannot open", img->name);
	if (fstat(img->fd, &st))
		return pr_errno(-errno, "%s: cannot stat", img->name);
	if (check_size(f, &st))
		return -EIO;
	img->size = f->size;
	img->xxh64 = f->xxh64;
	if (img->magic == IMG_MAGIC_RAW) {
		img->hashing = !img->dir->raw_verified;
		return 0;
	}
	return img_load_records(img);
}

struct img *img_open(struct img_dir *dir, uint32_t magic, const char *fmt, ...)
{
	const InvFile *f;
	struct img *img;
	va_list ap;
	int err;

	va_start(ap, fmt);
	img = img_alloc(dir, magic, fmt, ap);
	va_end(ap);
	if (!img) {
		errno = ENOMEM;
		return NULL;
	}
	if (dir->writing) {
		pr_err("%s: cannot read %s: directory opened for writing", dir->path, img->name);
		err = -EBADF;
		goto out_destroy;
	}
	f = inv_lookup(dir, img->name);
	if (!f) {
		err = -ENOENT;	/* not an error here: the caller knows if it is optional */
		goto out_destroy;
	}
	err = img_open_file(img, f);
	if (err)
		goto out_destroy;
	return img;
out_destroy:
	img_destroy(img);
	errno = -err;
	return NULL;
}

int img_read_msg(struct img *img, const ProtobufCMessageDescriptor *desc, ProtobufCMessage **ret)
{
	int err;

	if (!img->data) {
		pr_err("%s: not a record file opened for reading", img->name);
		return -EINVAL;
	}
	err = parse_record(img->name, img->data, img->size, &img->pos, img->rec_idx, desc, ret);
	if (!err && *ret)
		img->rec_idx++;
	return err;
}

int img_read_all(struct img *img, const ProtobufCMessageDescriptor *desc,
		 ProtobufCMessage ***ret, size_t *nr)
{
	ProtobufCMessage **all = NULL, *msg;
	size_t n = 0, cap = 0;
	int err;

	while (!(err = img_read_msg(img, desc, &msg)) && msg) {
		if (xgrow((void **)&all, &cap, n + 1, sizeof(*all))) {
			protobuf_c_message_free_unpacked(msg, NULL);
			err = -ENOMEM;
			break;
		}
		all[n++] = msg;
	}
	if (err) {
		img_free_all(all, n);
		return err;
	}
	*ret = all;
	*nr = n;
	return 0;
}

void img_free_all(ProtobufCMessage **msgs, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		protobuf_c_message_free_unpacked(msgs[i], NULL);
	free(msgs);
}

/* Checks the checksum once the last byte has been read, if every byte went through here. */
static int img_raw_account(struct img *img, const void *buf, size_t len)
{
	if (img->hashing)
		xxh64_update(&img->xs, buf, len);
	img->rpos += len;
	if (!img->hashing || img->rpos != img->size)
		return 0;
	if (xxh64_digest(&img->xs) != img->xxh64) {
		pr_err("%s: checksum mismatch (image damaged)", img->name);
		return -EIO;
	}
	return 0;
}

/* Checks that img is a raw file being read and that len more bytes are there. */
static int raw_read_check(struct img *img, size_t len)
{
	off_t off;

	if (img->writing || img->magic != IMG_MAGIC_RAW) {
		pr_err("%s: not a raw file opened for reading", img->name);
		return -EINVAL;
	}
	/*
	 * The caller may also lseek() or read() img_fd() itself (to skip pages, say); then
	 * the running checksum no longer covers the file in order and is given up.
	 */
	off = lseek(img->fd, 0, SEEK_CUR);
	if (off < 0)
		return pr_errno(-errno, "%s: cannot get the file offset", img->name);
	if ((uint64_t)off != img->rpos) {
		pr_debug("%s: read out of order at %lld, checksum not verified", img->name,
			 (long long)off);
		img->hashing = false;
		img->rpos = off;
	}
	if (len > img->size - MIN(img->rpos, img->size)) {
		pr_err("%s: cannot read %zu bytes at offset %llu: the file has %llu", img->name,
		       len, (unsigned long long)img->rpos, (unsigned long long)img->size);
		return -ENODATA;
	}
	return 0;
}

static int raw_read_error(struct img *img, int err, size_t len)
{
	if (err == -ENODATA)
		pr_err("%s: unexpected end of file at offset %llu (truncated)", img->name,
		       (unsigned long long)img->rpos);
	else
		pr_errno(err, "%s: cannot read %zu bytes at offset %llu", img->name, len,
			 (unsigned long long)img->rpos);
	return err;
}

int img_read_raw(struct img *img, void *buf, size_t len)
{
	int err = raw_read_check(img, len);

	if (err)
		return err;
	err = read_all(img->fd, buf, len);
	if (err)
		return raw_read_error(img, err, len);
	return img_raw_account(img, buf, len);
}

/* readv() until every buffer is full; a short read finishes its buffer with read(). */
static int readv_all(int fd, const struct iovec *iov, size_t nr)
{
	size_t i = 0;

	while (i < nr) {
		ssize_t n = readv(fd, iov + i, nr - i);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		for (; i < nr && (size_t)n >= iov[i].iov_len; i++)
			n -= iov[i].iov_len;
		if (n) {
			int err = read_all(fd, (char *)iov[i].iov_base + n, iov[i].iov_len - n);

			if (err)
				return err;
			i++;
		}
	}
	return 0;
}

int img_read_rawv(struct img *img, const struct iovec *iov, size_t nr)
{
	size_t len = 0;
	int err;

	for (size_t i = 0; i < nr; i++)
		len += iov[i].iov_len;
	err = raw_read_check(img, len);
	if (err)
		return err;
	err = readv_all(img->fd, iov, nr);
	if (err)
		return raw_read_error(img, err, len);
	for (size_t i = 0; !err && i < nr; i++)
		err = img_raw_account(img, iov[i].iov_base, iov[i].iov_len);
	return err;
}
