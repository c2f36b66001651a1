/*
 * Page contents at dump: which pages to save (PAGEMAP_SCAN) and copying them out of the
 * stopped target (process_vm_readv into one reused, pre-populated buffer, or /proc/PID/mem
 * for mappings the target cannot read itself).
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/pages.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "image/img.h"
#include "ns/pidns.h"
#include "pagemap.pb-c.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL
#define COPY_BUF (4UL << 20)	/* bytes copied per round: fits caches, amortises syscalls */
#define SCAN_VEC 512		/* runs returned per PAGEMAP_SCAN call */

bool page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (size_t i = 0; i < PAGE / sizeof(*w); i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

int page_writer_open(struct page_writer *pw, struct img_dir *dir, const char *id)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;

	memset(pw, 0, sizeof(*pw));
	pw->pagemap = img_create(dir, IMG_MAGIC_PAGEMAP, "pagemap-%s.img", id);
	if (!pw->pagemap)
		return -errno;
	pw->pages = img_create(dir, IMG_MAGIC_RAW, "pages-%s.img", id);
	if (!pw->pages) {
		img_close(pw->pagemap);
		return -errno;
	}
	return img_write_msg(pw->pagemap, &head.base);
}

int page_writer_break(struct page_writer *pw)
{
	PagemapEntry pe = PAGEMAP_ENTRY__INIT;

	if (!pw->run_pages)
		return 0;
	pe.vaddr = pw->run_start;
	pe.nr_pages = pw->run_pages;
	pw->run_pages = 0;
	return img_write_msg(pw->pagemap, &pe.base);
}

/*
 * Adds the pages in buf (copied from vaddr) to the image: all-zero pages are dropped, the
 * others are packed to the front of buf and written at once; runs that continue the previous
 * one extend it, so there is one pagemap entry per contiguous run.
 */
int page_writer_add(struct page_writer *pw, uint64_t vaddr, char *buf, size_t len)
{
	size_t out = 0;
	int ret;

	for (size_t off = 0; off < len; off += PAGE) {
		uint64_t addr = vaddr + off;

		if (!pw->keep_zero && page_is_zero(buf + off))
			continue;
		if (pw->run_pages && pw->run_start + pw->run_pages * PAGE == addr) {
			pw->run_pages++;
		} else {
			ret = page_writer_break(pw);
			if (ret)
				return ret;
			pw->run_start = addr;
			pw->run_pages = 1;
		}
		if (out != off)
			memcpy(buf + out, buf + off, PAGE);
		out += PAGE;
	}
	pw->bytes += out;
	return out ? img_write_raw(pw->pages, buf, out) : 0;
}

int page_writer_close(struct page_writer *pw)
{
	int ret = page_writer_break(pw);
	int r1 = img_close(pw->pagemap), r2 = img_close(pw->pages);

	return ret ? ret : r1 ? r1 : r2;
}

void *page_buf_alloc(void)
{
	/* Populated up front: copying into fresh memory faults per page (KERNEL-NOTES 2a). */
	void *buf = mmap(NULL, COPY_BUF, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (buf == MAP_FAILED) {
		pr_perror("cannot allocate the page copy buffer");
		return NULL;
	}
	return buf;
}

void page_buf_free(void *buf)
{
	munmap(buf, COPY_BUF);
}

size_t page_buf_size(void)
{
	return COPY_BUF;
}

/* Pages a dump saves from a private mapping: present or swapped, not the shared zero page,
 * and not a page-cache page of the mapped file (those are still equal to the file). */
static int scan_vma(int pagemap_fd, const VmaEntry *vma, uint64_t from,
		    struct page_region *vec, size_t *nr, uint64_t *walk_end)
{
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = from,
		.end = vma->end,
		.vec = (uint64_t)vec,
		.vec_len = SCAN_VEC,
		.category_inverted = PAGE_IS_PFNZERO | PAGE_IS_FILE,
		.category_mask = PAGE_IS_PFNZERO | PAGE_IS_FILE,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};
	long n = ioctl(pagemap_fd, PAGEMAP_SCAN, &arg);

	if (n < 0)
		return -errno;
	*nr = n;
	*walk_end = arg.walk_end;
	return 0;
}

/* Copies [addr, addr+len) of pid into buf: process_vm_readv, or /proc/PID/mem (FOLL_FORCE)
 * for mappings without PROT_READ, which process_vm_readv refuses. */
static int copy_range(pid_t pid, int mem_fd, bool readable, uint64_t addr, char *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	ssize_t n;

	if (readable) {
		n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
		if (n == (ssize_t)len)
			return 0;
	}
	return pread_all(mem_fd, buf, len, addr);
}

struct dump_pages_ctx {
	pid_t pid;
	int pagemap_fd;
	int mem_fd;
	char *buf;
	struct page_writer pw;
	struct page_region vec[SCAN_VEC];
};

static int dump_region(struct dump_pages_ctx *c, const VmaEntry *vma, uint64_t start, uint64_t end)
{
	bool readable = vma->prot & PROT_READ;

	while (start < end) {
		size_t len = MIN(end - start, COPY_BUF);
		int ret = copy_range(c->pid, c->mem_fd, readable, start, c->buf, len);

		if (ret)
			return pr_errno(ret, "pid %d: cannot read memory at %" PRIx64, c->pid, start);
		ret = page_writer_add(&c->pw, start, c->buf, len);
		if (ret)
			return ret;
		start += len;
	}
	return 0;
}

static bool vma_has_private_pages(const VmaEntry *vma)
{
	if (vma->flags & MAP_SHARED)
		return false;
	return vma->kind == VMA_KIND__VMA_ANON || vma->kind == VMA_KIND__VMA_FILE ||
	       vma->kind == VMA_KIND__VMA_SHMEM;
}

static int dump_vma(struct dump_pages_ctx *c, const VmaEntry *vma)
{
	uint64_t from = vma->start, walk_end = 0;
	size_t nr = 0;

	while (from < vma->end) {
		int ret = scan_vma(c->pagemap_fd, vma, from, c->vec, &nr, &walk_end);

		if (ret)
			return pr_errno(ret, "pid %d: PAGEMAP_SCAN of %" PRIx64 "-%" PRIx64 " failed",
					c->pid, vma->start, vma->end);
		for (size_t i = 0; i < nr; i++) {
			ret = dump_region(c, vma, c->vec[i].start, c->vec[i].end);
			if (ret)
				return ret;
		}
		if (walk_end <= from)
			break;
		from = walk_end;
	}
	return 0;
}

static int open_proc(pid_t pid, const char *what, int flags)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		pr_perror("pid %d: cannot open %s", pid, path);
	return fd;
}

int mem_dump_pages(struct img_dir *dir, pid_t pid, const struct mem_map *map, uint64_t *ret_bytes)
{
	struct dump_pages_ctx *c = xzalloc(sizeof(*c));
	char id[16];
	int ret = -ENOMEM;

	if (!c)
		return -ENOMEM;
	c->pid = pid;
	c->pagemap_fd = open_proc(pid, "pagemap", O_RDONLY);
	c->mem_fd = open_proc(pid, "mem", O_RDONLY);
	c->buf = page_buf_alloc();
	if (c->pagemap_fd < 0 || c->mem_fd < 0 || !c->buf)
		goto out;
	/* Images name a process by the pid the tree sees. */
	snprintf(id, sizeof(id), "%d", pidns_view(pid));
	ret = page_writer_open(&c->pw, dir, id);
	/* Runs end at mapping boundaries: restore puts each run into one premapped area. */
	for (size_t i = 0; !ret && i < map->nr_vmas; i++) {
		if (!vma_has_private_pages(map->vmas[i]))
			continue;
		c->pw.keep_zero = map->vmas[i]->kind != VMA_KIND__VMA_ANON;
		ret = dump_vma(c, map->vmas[i]) ?: page_writer_break(&c->pw);
	}
	if (!ret)
		ret = page_writer_close(&c->pw);
	else
		page_writer_close(&c->pw);
	if (!ret && ret_bytes)
		*ret_bytes = c->pw.bytes;
out:
	if (c->buf)
		page_buf_free(c->buf);
	safe_close(c->pagemap_fd);
	safe_close(c->mem_fd);
	free(c);
	return ret;
}
