/*
 * The contents of SysV shared memory segments. They belong to the segment, not to the
 * processes that attach it (whose mm-<pid>.img only says where), and are saved once per
 * segment by src/ns/ipc-shm.c, which attaches it read-only in crest and calls these.
 */
#define LOG_PREFIX "mem/sysvshm: "
#include "mem/mem.h"
#include "mem/pages.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL

/*
 * Hands pages [from, to) of the attach to the page pipe, one buffer at a time. The run holds
 * only pages the segment has, so MADV_POPULATE_READ (5.14+) maps them all in one call instead
 * of one fault each (KERNEL-NOTES 9b) and allocates nothing.
 */
static int sysv_copy_run(struct page_pipe *pp, const char *addr, uint64_t from, uint64_t to)
{
	if (madvise((void *)(addr + from), to - from, MADV_POPULATE_READ))
		pr_debug("MADV_POPULATE_READ failed (%s): pages fault in one by one", strerror(errno));
	while (from < to) {
		size_t len = MIN(to - from, (uint64_t)page_buf_size());
		char *buf = page_pipe_buf(pp, len);
		int err;

		if (!buf)
			return -EIO;	/* the writer failed; page_pipe_close says why */
		memcpy(buf, addr + from, len);
		err = page_pipe_add(pp, buf, from, len, false);
		if (err)
			return err;
		from += len;
	}
	return 0;
}

/*
 * mincore(2) on a shmem mapping reports the pages the segment has (in memory or in swap
 * cache) without touching the others: reading a hole through the mapping would allocate a
 * page in the live segment. Pages that hold only zeros are left out too.
 */
int mem_sysv_dump(struct img_dir *dir, const char *id, const char *addr, uint64_t size)
{
	uint64_t len = ALIGN_UP(size, PAGE), npages = len / PAGE;
	_cleanup_free_ unsigned char *vec = xmalloc(npages + 1);
	struct page_pipe *pp;
	int err, closed;

	if (!vec)
		return -ENOMEM;
	if (len && mincore((void *)addr, len, vec))
		return pr_errno(-errno, "segment %s: mincore failed", id);
	err = page_pipe_open(dir, id, &pp);
	if (err)
		return err;
	for (uint64_t p = 0; !err && p < npages;) {
		uint64_t end = p;

		while (end < npages && (vec[end] & 1))
			end++;
		if (end > p)
			err = sysv_copy_run(pp, addr, p * PAGE, end * PAGE);
		p = end + 1;
	}
	closed = page_pipe_close(pp, NULL);
	if (closed && (!err || err == -EIO))
		err = closed;
	return err;
}

struct sysv_fill {
	const char *id;
	char *addr;
	uint64_t len;
};

static bool sysv_dest(void *arg, uint64_t off, uint64_t len, struct fill_dest *dest)
{
	struct sysv_fill *f = arg;

	if (off + len > f->len || off + len < off) {
		pr_err("pagemap-%s.img: data at %" PRIu64 " past the segment's size %" PRIu64, f->id,
		       off, f->len);
		return false;
	}
	dest->addr = f->addr + off;
	dest->area = 0;
	return true;
}

/* No bridging: a hole of the segment stays a hole (memory use, like a shmem object's). */
static const struct fill_ops sysv_fill_ops = { .dest_of = sysv_dest };

int mem_sysv_fill(struct img_dir *dir, const char *id, char *addr, uint64_t size)
{
	struct sysv_fill fill = { id, addr, ALIGN_UP(size, PAGE) };
	uint64_t bytes = 0;

	return mem_fill_pages(dir, id, &sysv_fill_ops, &fill, &bytes);
}
