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

#define SCAN_VEC 512		/* runs returned per PAGEMAP_SCAN call */

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
	struct page_pipe *pp;
	struct page_region vec[SCAN_VEC];
};

/*
 * Zero pages are dropped only from anonymous memory; elsewhere a page left out would show
 * the file's bytes at restore (see page_pipe_add).
 */
static int dump_region(struct dump_pages_ctx *c, const VmaEntry *vma, uint64_t start, uint64_t end)
{
	bool readable = vma->prot & PROT_READ, keep_zero = vma->kind != VMA_KIND__VMA_ANON;

	while (start < end) {
		size_t len = MIN(end - start, page_buf_size());
		char *buf = page_pipe_buf(c->pp, len);
		int ret;

		if (!buf)
			return -EIO;	/* the writer failed; page_pipe_close says why */
		ret = copy_range(c->pid, c->mem_fd, readable, start, buf, len);
		if (ret)
			return pr_errno(ret, "pid %d: cannot read memory at %" PRIx64, c->pid, start);
		ret = page_pipe_add(c->pp, buf, start, len, keep_zero);
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
	int ret = -ENOMEM, closed;

	if (!c)
		return -ENOMEM;
	c->pid = pid;
	c->pagemap_fd = open_proc(pid, "pagemap", O_RDONLY);
	c->mem_fd = open_proc(pid, "mem", O_RDONLY);
	if (c->pagemap_fd < 0 || c->mem_fd < 0)
		goto out;
	/* Images name a process by the pid the tree sees. */
	snprintf(id, sizeof(id), "%d", pidns_view(pid));
	ret = page_pipe_open(dir, id, &c->pp);
	if (ret)
		goto out;
	/* Runs end at mapping boundaries: restore puts each run into one premapped area. */
	for (size_t i = 0; !ret && i < map->nr_vmas; i++) {
		if (!vma_has_private_pages(map->vmas[i]))
			continue;
		ret = dump_vma(c, map->vmas[i]);
		page_pipe_break(c->pp);
	}
	closed = page_pipe_close(c->pp, ret_bytes);
	/* The writer's own error explains a failed hand-over (-EIO above) best. */
	if (closed && (!ret || ret == -EIO))
		ret = closed;
out:
	safe_close(c->pagemap_fd);
	safe_close(c->mem_fd);
	free(c);
	return ret;
}
