/*
 * The page pipe: how page contents reach pagemap-<id>.img and pages-<id>.img at dump.
 *
 * The dumping thread fills buffers with a process's memory (process_vm_readv), drops the
 * all-zero pages and packs the rest to the front while the buffer is still in cache; a
 * writer thread turns the runs into pagemap entries and checksums and writes the data. The
 * two halves cost about the same, so on two cores the copy out of the target and the write
 * into the image overlap instead of taking turns.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/pages.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "image/img.h"
#include "image/zchunk.h"
#include "pagemap.pb-c.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL
#define COPY_BUF (4UL << 20)	/* bytes per buffer: fits caches, amortises syscalls */
#define NR_SLOTS 4		/* buffers in flight between the two threads */
#define HPAGE (2UL << 20)

/* A run of saved pages: nr_pages starting at vaddr, back to back in the packed buffer. */
struct page_run {
	uint64_t vaddr;
	uint32_t nr_pages;
};

struct page_slot {
	char *buf;
	size_t populated;		/* bytes of buf populated so far */
	size_t len;			/* packed bytes in buf */
	struct page_run *runs;
	size_t nr_runs;
	bool break_first;		/* the first run starts a new entry even if adjacent */
};

struct page_pipe {
	struct img *pagemap;
	struct img *pages;
	struct zchunk_writer *zw;	/* --compress: the writer thread compresses */
	/* The entry being extended: only the writer thread touches these. */
	uint64_t run_start;
	uint32_t run_pages;
	uint64_t bytes;

	struct page_slot slots[NR_SLOTS];
	char *area;			/* the buffers' mapping */
	size_t area_len;
	uint64_t filled;		/* slots handed to the writer so far */
	uint64_t written;		/* slots the writer is done with */
	bool closing;
	bool pending_break;		/* set by page_pipe_break, for the next slot */
	int err;			/* first error of either side */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pthread_t writer;
	bool writer_started;
};

bool page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < PAGE / sizeof(*w); i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

size_t page_buf_size(void)
{
	return COPY_BUF;
}

static int emit_entry(struct page_pipe *pp)
{
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;

	if (!pp->run_pages)
		return 0;
	pe.vaddr = pp->run_start;
	pe.nr_pages = pp->run_pages;
	pp->run_pages = 0;
	return img_write_msg(pp->pagemap, &pe.base);
}

/* Writer side: one pagemap entry per contiguous run, then the packed data. */
static int write_slot(struct page_pipe *pp, const struct page_slot *slot)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < slot->nr_runs; i++) {
		const struct page_run *run = &slot->runs[i];
		bool joins = pp->run_pages && !(i == 0 && slot->break_first) &&
			     pp->run_start + pp->run_pages * PAGE == run->vaddr;

		if (joins) {
			pp->run_pages += run->nr_pages;
			continue;
		}
		ret = emit_entry(pp);
		pp->run_start = run->vaddr;
		pp->run_pages = run->nr_pages;
	}
	if (!ret && slot->len)
		ret = pp->zw ? zchunk_write(pp->zw, pp->pages, slot->buf, slot->len) :
			       img_write_raw(pp->pages, slot->buf, slot->len);
	pp->bytes += slot->len;
	return ret;
}

static void *writer_main(void *arg)
{
	struct page_pipe *pp = arg;

	pthread_mutex_lock(&pp->lock);
	for (;;) {
		struct page_slot *slot;
		int ret;

		while (pp->written == pp->filled && !pp->closing)
			pthread_cond_wait(&pp->changed, &pp->lock);
		if (pp->written == pp->filled)
			break;
		slot = &pp->slots[pp->written % NR_SLOTS];
		pthread_mutex_unlock(&pp->lock);
		/* After an error, slots are only drained, so the dumping side never blocks. */
		ret = pp->err ? 0 : write_slot(pp, slot);
		pthread_mutex_lock(&pp->lock);
		if (ret && !pp->err)
			pp->err = ret;
		pp->written++;
		pthread_cond_broadcast(&pp->changed);
	}
	pthread_mutex_unlock(&pp->lock);
	return NULL;
}

/*
 * One area for all buffers, 2 MiB aligned and backed by huge pages where the kernel allows:
 * on a machine with shadow page tables even populated 4 KiB pages cost a fault in the
 * hypervisor on their first access, which made process_vm_readv into them run at 1 GB/s.
 * The area is populated as far as used (page_pipe_buf): a small process needs little.
 */
static int alloc_slots(struct page_pipe *pp)
{
	size_t len = NR_SLOTS * COPY_BUF + HPAGE;
	char *area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *aligned;

	if (area == MAP_FAILED)
		return pr_errno(-errno, "cannot allocate the page copy buffers");
	aligned = (char *)ALIGN_UP((uintptr_t)area, HPAGE);
	pp->area = area;
	pp->area_len = len;
	madvise(aligned, NR_SLOTS * COPY_BUF, MADV_HUGEPAGE);
	for (int i = 0; i < NR_SLOTS; i++) {
		pp->slots[i].buf = aligned + i * COPY_BUF;
		pp->slots[i].runs = xmalloc(COPY_BUF / PAGE * sizeof(*pp->slots[i].runs));
		if (!pp->slots[i].runs)
			return -ENOMEM;
	}
	return 0;
}

static void free_slots(struct page_pipe *pp)
{
	if (pp->area)
		munmap(pp->area, pp->area_len);
	for (int i = 0; i < NR_SLOTS; i++)
		free(pp->slots[i].runs);
}

static int open_files(struct page_pipe *pp, struct img_dir *dir, const char *id)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;

	if (imgdir_compress(dir)) {
		pp->zw = zchunk_writer_new(imgdir_compress(dir));
		if (!pp->zw)
			return -ENOMEM;
		head.has_format = true;
		head.format = PAGES_FORMAT__PAGES_ZSTD_CHUNKS;
	}

	pp->pagemap = img_create(dir, IMG_MAGIC_PAGEMAP, "pagemap-%s.img", id);
	if (!pp->pagemap)
		return -errno;
	pp->pages = img_create(dir, IMG_MAGIC_RAW, "pages-%s.img", id);
	if (!pp->pages)
		return -errno;
	return img_write_msg(pp->pagemap, &head.base);
}

int page_pipe_open(struct img_dir *dir, const char *id, struct page_pipe **ret)
{
	struct page_pipe *pp = xzalloc(sizeof(*pp));
	int err;

	if (!pp)
		return -ENOMEM;
	pthread_mutex_init(&pp->lock, NULL);
	pthread_cond_init(&pp->changed, NULL);
	err = alloc_slots(pp) ?: open_files(pp, dir, id);
	if (!err) {
		err = -pthread_create(&pp->writer, NULL, writer_main, pp);
		if (err)
			pr_errno(err, "cannot start the page writer thread");
		pp->writer_started = !err;
	}
	if (err) {
		page_pipe_close(pp, NULL);
		pp = NULL;
	}
	*ret = pp;
	return err;
}

/*
 * Copying into memory that is not populated yet faults once per page, some 30 times slower
 * than into populated memory (KERNEL-NOTES 2a): populate in bulk what the copy will need.
 */
static void populate_slot(struct page_slot *slot, size_t len)
{
	if (len <= slot->populated)
		return;
	if (madvise(slot->buf + slot->populated, len - slot->populated, MADV_POPULATE_WRITE))
		pr_debug("MADV_POPULATE_WRITE of the page buffer failed: %s", strerror(errno));
	slot->populated = len;
}

char *page_pipe_buf(struct page_pipe *pp, size_t len)
{
	struct page_slot *slot = NULL;

	pthread_mutex_lock(&pp->lock);
	while (pp->filled - pp->written == NR_SLOTS && !pp->err)
		pthread_cond_wait(&pp->changed, &pp->lock);
	if (!pp->err)
		slot = &pp->slots[pp->filled % NR_SLOTS];
	pthread_mutex_unlock(&pp->lock);
	if (!slot)
		return NULL;
	populate_slot(slot, len);
	return slot->buf;
}

/* Drops all-zero pages (unless keep_zero), packs the others and lists their runs. */
static void pack_slot(struct page_slot *slot, uint64_t vaddr, size_t len, bool keep_zero)
{
	struct page_run *run = NULL;

	slot->len = 0;
	slot->nr_runs = 0;
	for (size_t off = 0; off < len; off += PAGE) {
		if (!keep_zero && page_is_zero(slot->buf + off)) {
			run = NULL;
			continue;
		}
		if (!run) {
			run = &slot->runs[slot->nr_runs++];
			run->vaddr = vaddr + off;
			run->nr_pages = 0;
		}
		run->nr_pages++;
		if (slot->len != off)
			memcpy(slot->buf + slot->len, slot->buf + off, PAGE);
		slot->len += PAGE;
	}
}

int page_pipe_add(struct page_pipe *pp, char *buf, uint64_t vaddr, size_t len, bool keep_zero)
{
	struct page_slot *slot = &pp->slots[pp->filled % NR_SLOTS];
	int err;

	if (buf != slot->buf)
		return pr_errno(-EINVAL, "page pipe: buffer handed back out of turn");
	pack_slot(slot, vaddr, len, keep_zero);
	slot->break_first = pp->pending_break;
	pp->pending_break = false;
	pthread_mutex_lock(&pp->lock);
	err = pp->err;
	pp->filled++;
	pthread_cond_broadcast(&pp->changed);
	pthread_mutex_unlock(&pp->lock);
	return err;
}

void page_pipe_break(struct page_pipe *pp)
{
	pp->pending_break = true;
}

static int close_files(struct page_pipe *pp)
{
	int ret = pp->err ? 0 : emit_entry(pp);
	int r1 = pp->pagemap ? img_close(pp->pagemap) : 0;
	int r2 = pp->pages ? img_close(pp->pages) : 0;

	return ret ? ret : r1 ? r1 : r2;
}

int page_pipe_close(struct page_pipe *pp, uint64_t *bytes)
{
	int err, ret;

	if (pp->writer_started) {
		pthread_mutex_lock(&pp->lock);
		pp->closing = true;
		pthread_cond_broadcast(&pp->changed);
		pthread_mutex_unlock(&pp->lock);
		pthread_join(pp->writer, NULL);
	}
	ret = close_files(pp);
	err = pp->err ?: ret;
	if (!err && bytes)
		*bytes = pp->bytes;
	free_slots(pp);
	zchunk_writer_free(pp->zw);
	pthread_mutex_destroy(&pp->lock);
	pthread_cond_destroy(&pp->changed);
	free(pp);
	return err;
}
