/*
 * Unit test of the image layer: XXH64 against known vectors, a directory written and read
 * back, and each way an image can be broken (truncated, damaged, incomplete, too new, wrong
 * kind) refused with the message the user will see. Exits 0 when all pass.
 */
#define LOG_PREFIX "test_img: "

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

#include "core.pb-c.h"
#include "files.pb-c.h"
#include "inventory.pb-c.h"
#include "pstree.pb-c.h"
#include "unit.h"

static char tmpdir[] = "/tmp/crest-test-img.XXXXXX";
static char logpath[4096];


#define RAW_BIG (200 * 1024)	/* over the write buffer: goes straight to write(2) */
#define PIPE_BIG (100 * 1024)	/* a record bigger than the write buffer */

/* ---------------------------------------------------------------- helpers */

static char *path_in(const char *dir, const char *name)
{
	static char buf[8192];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void rm_tree(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

/* Copies src to a new directory dst, so that each breakage starts from a good image. */
static void copy_dir(const char *src, const char *dst)
{
	char cmd[8192];

	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", src, dst);
	if (system(cmd))
		fprintf(stderr, "cannot run: %s\n", cmd);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		abort();
	b ^= 0x40;
	if (pwrite(fd, &b, 1, off) != 1)
		abort();
	close(fd);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (i * 7 + 3 + seed) & 0xff;
}

/* ---------------------------------------------------------------- xxh64 */

static void test_xxh64(void)
{
	static const struct { size_t len; uint64_t h; } vec[] = {
		/* cross-checked with xxhsum -H64 (xxhash 0.8.1) */
		{ 31, 0xa2aa5f33cc4a6119ULL }, { 32, 0x23c3c17ef790fd97ULL },
		{ 100, 0xa61f8d4c170fe531ULL }, { 1000, 0x5f235fa033f1a3fbULL },
	};
	uint8_t buf[1000];
	struct xxh64_state st;
	size_t i, off, step;

	CHECK(xxh64("", 0) == 0xEF46DB3751D8E999ULL, "empty");
	CHECK(xxh64("a", 1) == 0xD24EC4F1A98C6E5BULL, "a");
	CHECK(xxh64("abc", 3) == 0x44BC2CF5AD770999ULL, "abc");
	fill_pattern(buf, sizeof(buf), 0);
	for (i = 0; i < ARRAY_SIZE(vec); i++)
		CHECK(xxh64(buf, vec[i].len) == vec[i].h, "len %zu", vec[i].len);
	/* Streaming in odd pieces gives the one-shot result. */
	for (step = 1; step < 70; step += 3) {
		xxh64_init(&st);
		for (off = 0; off < sizeof(buf); off += step)
			xxh64_update(&st, buf + off, MIN(step, sizeof(buf) - off));
		CHECK(xxh64_digest(&st) == 0x5f235fa033f1a3fbULL, "step %zu", step);
	}
}

/* ---------------------------------------------------------------- a good image */

static int write_core(struct img_dir *dir)
{
	TaskCore tc = TASK_CORE__INIT;
	ThreadCore th = THREAD_CORE__INIT;
	X86Regs regs = X86_REGS__INIT;
	struct img *img = img_create(dir, IMG_MAGIC_CORE, "core-%d.img", 42);
	int err;

	if (!img)
		return -errno;
	tc.pid = 42;
	tc.comm = "sleeper";
	regs.ip = 0xdeadbeef;
	th.tid = 43;
	th.regs = &regs;
	err = img_write_msg(img, &tc.base);
	err = err ?: img_write_msg(img, &th.base);
	th.tid = 44;
	err = err ?: img_write_msg(img, &th.base);
	return err ?: img_close(img);
}

static int write_pipes(struct img_dir *dir)
{
	static uint8_t data[PIPE_BIG];
	PipeData pd = PIPE_DATA__INIT;
	struct img *img = img_create(dir, IMG_MAGIC_PIPE_DATA, "pipes-data.img");
	int err;

	if (!img)
		return -errno;
	fill_pattern(data, sizeof(data), 1);
	pd.pipe_ino = 1234;
	pd.data.len = sizeof(data);
	pd.data.data = data;
	err = img_write_msg(img, &pd.base);
	pd.data.len = 5;
	err = err ?: img_write_msg(img, &pd.base);
	return err ?: img_close(img);
}

static int write_pages(struct img_dir *dir)
{
	static uint8_t big[RAW_BIG];
	struct img *img = img_create(dir, IMG_MAGIC_RAW, "pages-%d.img", 1);
	int err;

	if (!img)
		return -errno;
	fill_pattern(big, sizeof(big), 2);
	/* small writes (buffered), then a big one (direct), then small again */
	err = img_write_raw(img, big, 4096);
	err = err ?: img_write_raw(img, big + 4096, 100);
	err = err ?: img_write_raw(img, big + 4196, RAW_BIG - 4196 - 10);
	err = err ?: img_write_raw(img, big + RAW_BIG - 10, 10);
	CHECK(img_size(img) == RAW_BIG, "size %llu", (unsigned long long)img_size(img));
	return err ?: img_close(img);
}

static int write_image(const char *path)
{
	PstreeEntry pe = PSTREE_ENTRY__INIT;
	Inventory inv = INVENTORY__INIT;
	struct img_dir *dir;
	struct img *img;
	int err;

	err = imgdir_open_write(path, &dir);
	if (err)
		return err;
	img = img_create(dir, IMG_MAGIC_PSTREE, "pstree.img");
	CHECK(img != NULL, "pstree create");
	pe.pid = 42;
	CHECK(img_write_msg(img, &pe.base) == 0, "pstree write");
	CHECK(img_close(img) == 0, "pstree close");
	CHECK(write_core(dir) == 0, "core");
	CHECK(write_pipes(dir) == 0, "pipes");
	CHECK(write_pages(dir) == 0, "pages");
	/* An empty record file is still a file of the image. */
	CHECK(img_close(img_create(dir, IMG_MAGIC_FDINFO, "fdinfo-42.img")) == 0, "fdinfo");
	inv.root_pid = 42;
	err = imgdir_finish(dir, &inv);
	CHECK(err == 0, "finish: %d", err);
	CHECK(inv.n_files == 5, "n_files %zu", inv.n_files);
	imgdir_close(dir);
	return err;
}

static void test_write(const char *path)
{
	struct stat st;

	CHECK(write_image(path) == 0, "write_image");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0700, "dir mode %o", st.st_mode);
	CHECK(stat(path_in(path, "core-42.img"), &st) == 0 && (st.st_mode & 0777) == 0600,
	      "file mode %o", st.st_mode);
	CHECK(stat(path_in(path, "pages-1.img"), &st) == 0 && st.st_size == RAW_BIG, "pages");
	CHECK(stat(path_in(path, "inventory.img"), &st) == 0, "inventory written");
	CHECK(stat(path_in(path, "inventory.img.tmp"), &st) < 0, "no temporary left");
	CHECK(strstr(unit_take_log(logpath), "Error") == NULL, "no errors logged");
}

/* ---------------------------------------------------------------- reading it back */

static void check_core(struct img_dir *dir)
{
	struct img *img = img_open(dir, IMG_MAGIC_CORE, "core-%d.img", 42);
	ThreadCore *th;
	TaskCore *tc;

	CHECK(img != NULL, "open core");
	if (!img)
		return;
	CHECK(img_read(img, task_core, &tc) == 0 && tc, "task_core");
	if (tc) {
		CHECK(tc->pid == 42 && !strcmp(tc->comm, "sleeper"), "task_core fields");
		img_free(task_core, tc);
	}
	CHECK(img_read(img, thread_core, &th) == 0 && th, "thread_core 1");
	if (th) {
		CHECK(th->tid == 43 && th->regs->ip == 0xdeadbeef, "thread 1 fields");
		img_free(thread_core, th);
	}
	CHECK(img_read(img, thread_core, &th) == 0 && th && th->tid == 44, "thread_core 2");
	if (th)
		img_free(thread_core, th);
	CHECK(img_read(img, thread_core, &th) == 0 && th == NULL, "clean end");
	CHECK(img_close(img) == 0, "close");
}

static void check_pipes(struct img_dir *dir)
{
	static uint8_t data[PIPE_BIG];
	struct img *img = img_open(dir, IMG_MAGIC_PIPE_DATA, "pipes-data.img");
	PipeData *pd;

	CHECK(img != NULL, "open pipes");
	if (!img)
		return;
	fill_pattern(data, sizeof(data), 1);
	CHECK(img_read(img, pipe_data, &pd) == 0 && pd, "big record");
	if (pd) {
		CHECK(pd->data.len == PIPE_BIG && !memcmp(pd->data.data, data, PIPE_BIG), "data");
		img_free(pipe_data, pd);
	}
	CHECK(img_read(img, pipe_data, &pd) == 0 && pd && pd->data.len == 5, "small record");
	if (pd)
		img_free(pipe_data, pd);
	img_close(img);
}

static int read_pages(struct img_dir *dir, size_t chunk)
{
	static uint8_t want[RAW_BIG], got[RAW_BIG];
	struct img *img = img_open(dir, IMG_MAGIC_RAW, "pages-1.img");
	size_t off;
	int err = 0;

	if (!img)
		return -errno;
	fill_pattern(want, sizeof(want), 2);
	CHECK(img_size(img) == RAW_BIG, "listed size");
	for (off = 0; off < RAW_BIG && !err; off += chunk)
		err = img_read_raw(img, got + off, MIN(chunk, RAW_BIG - off));
	if (!err)
		CHECK(!memcmp(want, got, RAW_BIG), "page contents");
	img_close(img);
	return err;
}

static void test_read(const char *path)
{
	struct img_dir *dir;
	struct img *img;
	int err;

	err = imgdir_open_read(path, &dir);
	CHECK(err == 0, "open_read: %d %s", err, unit_take_log(logpath));
	if (err)
		return;
	CHECK(imgdir_inventory(dir)->root_pid == 42, "root_pid");
	CHECK(imgdir_inventory(dir)->format_version == IMG_FORMAT_VERSION, "version");
	CHECK(imgdir_inventory(dir)->n_files == 5, "files");
	check_core(dir);
	check_pipes(dir);
	CHECK(read_pages(dir, 4096) == 0, "pages by 4096");
	CHECK(read_pages(dir, 70000) == 0, "pages by 70000");
	img = img_open(dir, IMG_MAGIC_FDINFO, "fdinfo-42.img");
	CHECK(img && img_size(img) == 4, "empty record file");
	img_close(img);
	errno = 0;
	CHECK(img_open(dir, IMG_MAGIC_MM, "mm-42.img") == NULL && errno == ENOENT, "unlisted");
	CHECK(unit_take_log(logpath)[0] == '\0', "unlisted file is not logged");
	imgdir_close(dir);
}

/* ---------------------------------------------------------------- broken images */

/* Opens a broken copy and returns imgdir_open_read's result; the log holds the message. */
static int open_broken(const char *path)
{
	struct img_dir *dir;
	int err = imgdir_open_read(path, &dir);

	if (!err)
		imgdir_close(dir);
	return err;
}

static void test_truncated_raw(const char *good, const char *path)
{
	copy_dir(good, path);
	CHECK(truncate(path_in(path, "pages-1.img"), RAW_BIG - 4096) == 0, "truncate");
	CHECK(open_broken(path) == -EIO, "truncated pages refused");
	CHECK(strstr(unit_take_log(logpath), "pages-1.img: size 200704, inventory says 204800 (truncated)"),
	      "message");
}

static void test_flipped_record(const char *good, const char *path)
{
	struct img_dir *dir;

	copy_dir(good, path);
	flip_byte(path_in(path, "core-42.img"), 10);
	CHECK(imgdir_open_read(path, &dir) == 0, "sizes still agree");
	unit_take_log(logpath);
	errno = 0;
	CHECK(img_open(dir, IMG_MAGIC_CORE, "core-42.img") == NULL && errno == EIO, "refused");
	CHECK(strstr(unit_take_log(logpath), "core-42.img: checksum mismatch (image damaged)"), "message");
	imgdir_close(dir);
}

static void test_flipped_raw(const char *good, const char *path)
{
	struct img_dir *dir;

	copy_dir(good, path);
	flip_byte(path_in(path, "pages-1.img"), RAW_BIG - 1);
	CHECK(imgdir_open_read(path, &dir) == 0, "open");
	CHECK(read_pages(dir, 8192) == -EIO, "damage found at the last byte");
	CHECK(strstr(unit_take_log(logpath), "pages-1.img: checksum mismatch (image damaged)"), "message");
	imgdir_close(dir);
}

static void test_missing_inventory(const char *good, const char *path)
{
	char *log;

	copy_dir(good, path);
	unlink(path_in(path, "inventory.img"));
	CHECK(open_broken(path) == -ENOENT, "no inventory");
	log = unit_take_log(logpath);
	CHECK(strstr(log, "inventory.img: missing: ") && strstr(log, "not a complete image"),
	      "message: %s", log);
	CHECK(open_broken(path_in(path, "nonexistent")) == -ENOENT, "no directory");
	CHECK(strstr(unit_take_log(logpath), "cannot open image directory: No such file"), "message");
	CHECK(mkdir(path_in(path, "empty"), 0700) == 0, "mkdir");
	CHECK(open_broken(path_in(path, "empty")) == -ENOENT, "empty directory");
	CHECK(strstr(unit_take_log(logpath), "inventory.img: missing: "), "message");
	rmdir(path_in(path, "empty"));
}

static void test_missing_file(const char *good, const char *path)
{
	copy_dir(good, path);
	unlink(path_in(path, "core-42.img"));
	CHECK(open_broken(path) == -ENOENT, "listed file missing");
	CHECK(strstr(unit_take_log(logpath), "core-42.img: listed in the inventory, cannot stat: No such"),
	      "message");
}

/* Writes inventory.img by hand, as a newer crest would. */
static void write_raw_inventory(const char *path, uint32_t version)
{
	Inventory inv = INVENTORY__INIT;
	uint8_t buf[256];
	size_t len;
	int fd;

	inv.format_version = version;
	inv.root_pid = 1;
	len = inventory__pack(&inv, buf + 8);
	buf[0] = 0x01, buf[1] = 'I', buf[2] = 'R', buf[3] = 'C';	/* IMG_MAGIC_INVENTORY */
	buf[4] = len, buf[5] = buf[6] = buf[7] = 0;
	fd = open(path_in(path, "inventory.img"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, buf, len + 8) != (ssize_t)(len + 8))
		abort();
	close(fd);
}

static void test_newer_version(const char *path)
{
	char *log;

	CHECK(mkdir(path, 0700) == 0, "mkdir");
	write_raw_inventory(path, 1);
	CHECK(open_broken(path) == 0, "hand-made inventory is good: %s", unit_take_log(logpath));
	write_raw_inventory(path, 7);
	CHECK(open_broken(path) == -EINVAL, "newer version refused");
	log = unit_take_log(logpath);
	CHECK(strstr(log, "inventory.img: format version 7 is newer than this crest supports (1)"),
	      "message: %s", log);
}

static void test_wrong_magic(const char *good)
{
	struct img_dir *dir;

	CHECK(imgdir_open_read(good, &dir) == 0, "open");
	errno = 0;
	CHECK(img_open(dir, IMG_MAGIC_MM, "core-42.img") == NULL && errno == EINVAL, "refused");
	CHECK(strstr(unit_take_log(logpath), "core-42.img: magic 0x43524903, expected 0x43524904"), "message");
	imgdir_close(dir);
}

/* A record cut short inside a file whose checksum is right: the reader names the record. */
static void test_truncated_record(const char *path)
{
	static const uint8_t bytes[] = { 0x03, 'I', 'R', 'C', 2, 0, 0, 0, 0x08, 0x01,
					 100, 0, 0, 0, 0x08 };
	Inventory inv = INVENTORY__INIT;
	struct img_dir *dir;
	struct img *img;
	TaskCore *tc;

	CHECK(imgdir_open_write(path, &dir) == 0, "open_write");
	img = img_create(dir, IMG_MAGIC_RAW, "core-9.img");	/* raw, to write any bytes */
	CHECK(img && img_write_raw(img, bytes, sizeof(bytes)) == 0, "write");
	CHECK(img_close(img) == 0 && imgdir_finish(dir, &inv) == 0, "finish");
	imgdir_close(dir);
	CHECK(imgdir_open_read(path, &dir) == 0, "open_read");
	img = img_open(dir, IMG_MAGIC_CORE, "core-9.img");
	CHECK(img != NULL, "open");
	if (img) {
		CHECK(img_read(img, task_core, &tc) == 0 && tc && tc->pid == 1, "record 0");
		if (tc)
			img_free(task_core, tc);
		CHECK(img_read(img, task_core, &tc) == -EIO, "record 1 truncated");
		CHECK(strstr(unit_take_log(logpath), "core-9.img: record 1: truncated"), "message");
		img_close(img);
	}
	imgdir_close(dir);
}

/* A new dump into an old image's directory first removes the old inventory. */
static void test_stale_inventory(const char *good, const char *path)
{
	struct img_dir *dir;
	struct stat st;

	copy_dir(good, path);
	CHECK(imgdir_open_write(path, &dir) == 0, "open_write");
	CHECK(stat(path_in(path, "inventory.img"), &st) < 0, "stale inventory removed");
	CHECK(img_create(dir, IMG_MAGIC_CORE, "sub/core.img") == NULL && errno == EINVAL,
	      "name with a slash refused");
	imgdir_close(dir);
	unit_take_log(logpath);
}

/* The inventory must never vouch for a file that is still open or was written behind its back. */
static void test_finish_guards(const char *path)
{
	Inventory inv = INVENTORY__INIT;
	struct img_dir *dir;
	struct img *img;

	CHECK(imgdir_open_write(path, &dir) == 0, "open_write");
	img = img_create(dir, IMG_MAGIC_RAW, "pages-7.img");
	CHECK(img && img_write_raw(img, "abcd", 4) == 0, "write");
	CHECK(imgdir_finish(dir, &inv) == -EBUSY, "finish with a file open");
	CHECK(strstr(unit_take_log(logpath), "1 image files still open"), "message");
	CHECK(write(img_fd(img), "x", 1) == 1, "write behind the layer's back");
	CHECK(img_close(img) == -EIO, "close notices");
	CHECK(strstr(unit_take_log(logpath), "pages-7.img: size 5, but 4 bytes were written"), "message");
	CHECK(imgdir_finish(dir, &inv) == 0 && inv.n_files == 0, "not listed");
	imgdir_close(dir);
}

int main(void)
{
	char good[4200], bad[4200];
	int i = 0;

	if (!mkdtemp(tmpdir))
		return perror("mkdtemp"), 1;
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	log_init(LOG_ERROR, logpath);
	snprintf(good, sizeof(good), "%s/good", tmpdir);
#define BAD() (snprintf(bad, sizeof(bad), "%s/bad%d", tmpdir, i++), bad)
	test_xxh64();
	test_write(good);
	test_read(good);
	test_truncated_raw(good, BAD());
	test_flipped_record(good, BAD());
	test_flipped_raw(good, BAD());
	test_missing_inventory(good, BAD());
	test_newer_version(BAD());
	test_wrong_magic(good);
	test_truncated_record(BAD());
	test_stale_inventory(good, BAD());
	test_missing_file(good, BAD());
	test_finish_guards(BAD());
	while (i--) {
		snprintf(bad, sizeof(bad), "%s/bad%d", tmpdir, i);
		rm_tree(bad);
	}
	rm_tree(good);
	rm_tree(tmpdir);
	if (failures) {
		fprintf(stderr, "test_img: %d checks failed\n", failures);
		return 1;
	}
	printf("test_img: all checks passed\n");
	return 0;
}
