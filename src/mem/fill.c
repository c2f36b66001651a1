/*
 * Filling premapped memory from pagemap-<id>.img and pages-<id>.img at restore.
 *
 * Runs of pages become spans of memory: a span is populated with one MADV_POPULATE_WRITE
 * (letting read() fault pages in costs 10-16 us a page here, populating 0.4 us) and its
 * runs are read with readv(), up to IOV_MAX runs a call, since the runs lie back to back in
 * the pages file even where they do not in memory. Where the owner allows it, a small gap
 * between two runs of one area joins the span: those pages were all-zero pages the dump
 * dropped, and populating them with their neighbours is cheaper than leaving holes (and
 * lets whole 2 MiB blocks be filled as huge pages).
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/pages.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "image/img.h"
#include "image/zchunk.h"
#include "pagemap.pb-c.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL
#define IOV_BYTES (8UL << 20)	/* read per call: checksummed while still in cache */
#define BRIDGE_MAX (16 * PAGE)	/* the largest gap a span bridges */

/* Where the page data comes from: the pages file itself, or its zstd chunks. */
struct page_source {
	struct img *pages;
	struct zchunk_reader *zr;	/* NULL: PAGES_RAW */
};

struct fill {
	struct page_source src;
	const struct fill_ops *ops;
	void *arg;
	char *span_start, *span_end;	/* the span being grown; span_end NULL: none */
	uint64_t area;
	uint64_t last_len;		/* of the last run added */
	struct iovec *iov;		/* its runs, each at most IOV_BYTES */
	size_t nr_iov, cap_iov;
};

static int page_source_open(struct page_source *src, const PagemapHead *head)
{
	if (!head->has_format || head->format == PAGES_FORMAT__PAGES_RAW)
		return 0;
	if (head->format != PAGES_FORMAT__PAGES_ZSTD_CHUNKS)
		return pr_errno(-EINVAL, "%s: unknown page data format %d", img_name(src->pages),
				head->format);
	src->zr = zchunk_reader_new(src->pages);
	return src->zr ? 0 : -ENOMEM;
}

static int page_source_readv(struct page_source *src, const struct iovec *iov, size_t nr)
{
	int ret = 0;

	if (!src->zr)
		return img_read_rawv(src->pages, iov, nr);
	for (size_t i = 0; !ret && i < nr; i++)
		ret = zchunk_read(src->zr, iov[i].iov_base, iov[i].iov_len);
	return ret;
}

/* Reads the span's runs in batches of at most IOV_MAX runs and IOV_BYTES bytes. */
static int read_runs(struct fill *f)
{
	size_t first = 0;

	while (first < f->nr_iov) {
		size_t n = 0, bytes = 0;
		int ret;

		while (first + n < f->nr_iov && n < IOV_MAX && bytes < IOV_BYTES)
			bytes += f->iov[first + n++].iov_len;
		ret = page_source_readv(&f->src, f->iov + first, n);
		if (ret)
			return ret;
		first += n;
	}
	return 0;
}

static int fill_flush(struct fill *f)
{
	uint64_t len;
	int ret;

	if (!f->span_end)
		return 0;
	len = f->span_end - f->span_start;
	if (f->ops->span)
		f->ops->span(f->arg, f->area, f->span_start, len);
	if (madvise(f->span_start, len, MADV_POPULATE_WRITE))
		pr_debug("MADV_POPULATE_WRITE failed (%s): pages fault in one by one", strerror(errno));
	ret = read_runs(f);
	f->nr_iov = 0;
	f->span_end = NULL;
	return ret;
}

static int add_iov(struct fill *f, char *addr, uint64_t len)
{
	while (len) {
		struct iovec *last = f->nr_iov ? &f->iov[f->nr_iov - 1] : NULL;
		size_t room = last && (char *)last->iov_base + last->iov_len == addr ?
			      IOV_BYTES - last->iov_len : 0;
		size_t n;

		if (!room) {
			if (xgrow((void **)&f->iov, &f->cap_iov, f->nr_iov + 1, sizeof(*f->iov)))
				return -ENOMEM;
			last = &f->iov[f->nr_iov++];
			*last = (struct iovec){ addr, 0 };
			room = IOV_BYTES;
		}
		n = MIN(room, len);
		last->iov_len += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/* A gap the span may bridge: small, and never larger than the run before it. */
static bool bridges(const struct fill *f, const struct fill_dest *d)
{
	uint64_t gap = d->addr - f->span_end;

	return gap == 0 || (f->ops->bridge && gap <= MIN(BRIDGE_MAX, f->last_len));
}

static int fill_add(struct fill *f, const struct fill_dest *d, uint64_t len)
{
	if (!f->span_end || d->area != f->area || d->addr < f->span_end || !bridges(f, d)) {
		int ret = fill_flush(f);

		if (ret)
			return ret;
		f->span_start = d->addr;
		f->area = d->area;
	}
	f->span_end = d->addr + len;
	f->last_len = len;
	return add_iov(f, d->addr, len);
}

static int fill_entries(struct fill *f, struct img *pm, uint64_t *bytes)
{
	int ret = 0;

	while (!ret) {
		struct fill_dest dest;
		PagemapEntry *pe;
		uint64_t len;

		ret = img_read(pm, pagemap_entry, &pe);
		if (ret || !pe)
			break;
		len = (uint64_t)pe->nr_pages * PAGE;
		if (!f->ops->dest_of(f->arg, pe->vaddr, len, &dest))
			ret = -EINVAL;
		pagemap_entry__free_unpacked(pe, NULL);
		if (!ret)
			ret = fill_add(f, &dest, len);
		*bytes += len;
	}
	return ret ?: fill_flush(f);
}

int mem_fill_pages(struct img_dir *dir, const char *id, const struct fill_ops *ops, void *arg,
		   uint64_t *bytes)
{
	struct img *pm = img_open(dir, IMG_MAGIC_PAGEMAP, "pagemap-%s.img", id);
	struct img *pages = pm ? img_open(dir, IMG_MAGIC_RAW, "pages-%s.img", id) : NULL;
	struct fill f = { .src = { .pages = pages }, .ops = ops, .arg = arg };
	PagemapHead *head = NULL;
	int ret;

	if (!pm || !pages) {
		ret = -errno;
		if (errno == ENOENT)
			pr_err("pagemap-%s.img or pages-%s.img: missing from the image", id, id);
		goto out;
	}
	ret = img_read(pm, pagemap_head, &head);
	if (!ret && !head)
		ret = pr_errno(-EINVAL, "pagemap-%s.img: no header record", id);
	if (!ret)
		ret = page_source_open(&f.src, head);
	if (!ret)
		ret = fill_entries(&f, pm, bytes);
	zchunk_reader_free(f.src.zr);
	free(f.iov);
	if (head)
		pagemap_head__free_unpacked(head, NULL);
out:
	if (pages)
		img_close(pages);
	if (pm)
		img_close(pm);
	return ret;
}
