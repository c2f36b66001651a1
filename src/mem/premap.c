/*
 * Restore: every mapping of the process is created at a temporary address inside one
 * reservation, populated in bulk and filled with its pages from the image; the restorer then
 * moves each one to its final address with mremap. Reading into populated memory runs at
 * copy speed; letting read() fault pages in one by one costs 10-16 us a page here.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/madv.h"
#include "mem/pages.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>

#include "image/img.h"
#include "restorer/restorer.h"
#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL
#define HPAGE (2UL << 20)

static bool vma_is_vdso_block(const VmaEntry *vma)
{
	return vma->kind == VMA_KIND__VMA_VDSO || vma->kind == VMA_KIND__VMA_VVAR ||
	       vma->kind == VMA_KIND__VMA_VVAR_VCLOCK;
}

/* Mappings crest creates and moves; the vDSO block is mapped by the kernel, vsyscall is fixed. */
static bool vma_premapped(const VmaEntry *vma)
{
	return !vma_is_vdso_block(vma) && vma->kind != VMA_KIND__VMA_VSYSCALL;
}

static bool ends_deleted(const char *path)
{
	size_t len = strlen(path), sl = strlen(" (deleted)");

	return len > sl && !strcmp(path + len - sl, " (deleted)");
}

/*
 * A deleted file (dump checked that the process held a descriptor of it) was recreated by
 * its descriptor's kind at the old path and unlinked again, so its descriptor reads the same
 * "PATH (deleted)": that descriptor, among this process's, is opened again for the mapping.
 */
static int open_deleted_file(const char *path, int flags)
{
	char link[PATH_MAX], fdpath[300];
	struct dirent *de;
	int fd = -1;
	DIR *d = opendir("/proc/self/fd");

	while (d && fd < 0 && (de = readdir(d))) {
		ssize_t n;
		struct stat st;

		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%s", de->d_name);
		n = readlink(fdpath, link, sizeof(link) - 1);
		if (n < 0 || (size_t)n != strlen(path) || memcmp(link, path, n))
			continue;
		if (!stat(fdpath, &st) && S_ISREG(st.st_mode) && st.st_nlink == 0)
			fd = open(fdpath, flags);
	}
	if (d)
		closedir(d);
	if (fd < 0 && !errno)
		errno = ENOENT;
	return fd;
}

static int open_mapped_file(pid_t pid, const VmaEntry *vma)
{
	bool rw = (vma->flags & MAP_SHARED) && (vma->prot & PROT_WRITE);
	int flags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC;
	int fd;

	errno = 0;
	if (ends_deleted(vma->path))
		fd = open_deleted_file(vma->path, flags);
	else
		fd = open(vma->path, flags);

	if (fd < 0)
		pr_perror("pid %d: cannot open %s mapped at %" PRIx64, pid, vma->path, vma->start);
	return fd;
}

/* Attaches part [pgoff, pgoff + len) of segment id at addr: whole, then the rest detached. */
static int attach_part(int id, int flags, uint64_t seg_len, uint64_t pgoff, uint64_t len,
		       uint64_t addr)
{
	char *p = shmat(id, NULL, flags);
	void *q;

	if (p == (void *)-1)
		return -errno;
	q = mremap(p + pgoff, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)addr);
	if (q == MAP_FAILED) {
		int err = -errno;

		munmap(p, seg_len);
		return err;
	}
	if (pgoff)
		munmap(p, pgoff);
	if (pgoff + len < seg_len)
		munmap(p + pgoff + len, seg_len - pgoff - len);
	return 0;
}

/*
 * A SysV attach is made again with shmat(2) at the temporary address: the segment was
 * recreated with its id in the new ipc namespace (src/ns/ipc-shm.c). The restorer's mremap
 * keeps it attached (the move opens the new VMA and closes the old one through shm_vm_ops,
 * so shm_nattch stays right). Part of a segment (an attach split by mprotect or a partial
 * munmap) is attached whole elsewhere and only that part moved into place.
 */
static int premap_sysv(pid_t pid, const VmaEntry *vma, uint64_t addr)
{
	uint64_t len = vma->end - vma->start, seg_len;
	int id = vma->ino, flags = vma->shm_flags & (SHM_RDONLY | SHM_EXEC), err;
	struct shmid_ds ds;

	if (shmctl(id, IPC_STAT, &ds))
		return pr_errno(-errno, "pid %d: SysV shm %d mapped at %" PRIx64 ": not in the restored ipc namespace",
				pid, id, vma->start);
	seg_len = ALIGN_UP(ds.shm_segsz, PAGE);
	if (vma->pgoff + len > seg_len || vma->pgoff + len < len)
		return pr_errno(-EINVAL, "pid %d: mapping %" PRIx64 "-%" PRIx64 " lies past the end of SysV shm %d (%" PRIu64 " bytes)",
				pid, vma->start, vma->end, id, (uint64_t)ds.shm_segsz);
	if (vma->pgoff == 0 && len == seg_len)
		err = shmat(id, (void *)addr, flags | SHM_REMAP) == (void *)-1 ? -errno : 0;
	else
		err = attach_part(id, flags, seg_len, vma->pgoff, len, addr);
	if (err)
		return pr_errno(err, "pid %d: cannot attach SysV shm %d for %" PRIx64 "-%" PRIx64, pid,
				id, vma->start, vma->end);
	return 0;
}

/*
 * A shared memory mapping that could never be made writable (no VM_MAYWRITE: made through a
 * read-only description, or of a memfd sealed against writing) is made the same way: one
 * with VM_MAYWRITE would make adding F_SEAL_WRITE fail with EBUSY.
 */
static int reopen_read_only(pid_t pid, const VmaEntry *vma, int fd)
{
	char path[64];
	int rfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		pr_perror("pid %d: cannot reopen %s read-only to map it at %" PRIx64, pid,
			  vma->path, vma->start);
	return rfd;
}

/*
 * Private mappings are premapped writable so their pages can be filled; shared ones get the
 * final protection (their contents live in the file or shmem object, not in the image).
 */
static int premap_one(pid_t pid, const VmaEntry *vma, uint64_t addr,
		      int (*shmem_fd)(void *, uint64_t), void *arg)
{
	uint64_t len = vma->end - vma->start;
	bool shared = vma->flags & MAP_SHARED;
	int prot = shared ? (int)vma->prot : PROT_READ | PROT_WRITE;
	int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
	int fd = -1, owned = 0;
	void *p;

	if (vma->kind == VMA_KIND__VMA_SYSV_SHM)
		return premap_sysv(pid, vma, addr);
	if (vma->kind == VMA_KIND__VMA_ANON) {
		flags |= MAP_ANONYMOUS | (vma->flags & MAP_GROWSDOWN);
	} else if (vma->kind == VMA_KIND__VMA_FILE) {
		fd = open_mapped_file(pid, vma);
		owned = 1;
	} else {
		fd = shmem_fd(arg, vma->ino);
		if (fd >= 0 && vma->no_maywrite) {
			fd = reopen_read_only(pid, vma, fd);
			owned = 1;
		}
	}
	if (fd < 0 && !(flags & MAP_ANONYMOUS))
		return -ENOENT;
	p = mmap((void *)addr, len, prot, flags, fd, vma->kind == VMA_KIND__VMA_ANON ? 0 : vma->pgoff);
	if (owned)
		close(fd);
	if (p == MAP_FAILED) {
		pr_perror("pid %d: cannot premap %" PRIx64 "-%" PRIx64 " %s", pid, vma->start,
			  vma->end, vma->path ? vma->path : "");
		return -errno;
	}
	return 0;
}

/* Finds the mapping holding addr (vmas sorted by start). */
static const VmaEntry *find_vma(const struct mem_map *map, uint64_t addr, size_t *idx)
{
	size_t lo = 0, hi = map->nr_vmas;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const VmaEntry *vma = map->vmas[mid];

		if (addr < vma->start)
			hi = mid;
		else if (addr >= vma->end)
			lo = mid + 1;
		else {
			*idx = mid;
			return vma;
		}
	}
	return NULL;
}

struct premap_ctx {
	pid_t pid;
	const struct mem_map *map;
	bool thp;		/* fill with huge pages where whole 2 MiB blocks are saved */
	uint64_t *premap_addr;	/* per vma index; 0 when not premapped */
	bool *thp_hinted;	/* per vma index: huge pages were asked for */
};

/* Private anonymous memory holding at least one aligned 2 MiB block. */
static bool vma_thp_candidate(const VmaEntry *vma)
{
	return vma->kind == VMA_KIND__VMA_ANON && !(vma->flags & MAP_SHARED) &&
	       ALIGN_UP(vma->start, HPAGE) + HPAGE <= vma->end;
}

/* A run of saved pages never crosses a mapping's end: each mapping is one area. */
static bool private_dest(void *arg, uint64_t vaddr, uint64_t len, struct fill_dest *dest)
{
	struct premap_ctx *c = arg;
	const VmaEntry *vma;
	size_t idx;

	vma = find_vma(c->map, vaddr, &idx);
	if (!vma || vaddr + len > vma->end || !c->premap_addr[idx]) {
		pr_err("pagemap-%d.img: pages at %" PRIx64 " (+%" PRIu64 ") are outside any restorable private mapping",
		       c->pid, vaddr, len);
		return false;
	}
	dest->addr = (char *)(c->premap_addr[idx] + (vaddr - vma->start));
	dest->area = idx;
	return true;
}

static void private_span(void *arg, uint64_t area, char *start, uint64_t len)
{
	struct premap_ctx *c = arg;

	if (c->thp && vma_thp_candidate(c->map->vmas[area]) && madv_thp_hint(start, len))
		c->thp_hinted[area] = true;
}

static const struct fill_ops private_fill = {
	.dest_of = private_dest,
	.span = private_span,
	.bridge = true,
};

static uint64_t premap_total(const struct mem_map *map, bool thp)
{
	uint64_t total = 0;

	for (size_t i = 0; i < map->nr_vmas; i++) {
		if (!vma_premapped(map->vmas[i]))
			continue;
		total += map->vmas[i]->end - map->vmas[i]->start + PAGE;
		if (thp && vma_thp_candidate(map->vmas[i]))
			total += HPAGE;
	}
	return total + PAGE;
}

static void note_vdso(const VmaEntry *vma, struct mem_premap *pm)
{
	if (!vma_is_vdso_block(vma))
		return;
	if (!pm->vdso_addr || vma->start < pm->vdso_addr)
		pm->vdso_addr = vma->start;
	if (vma->kind == VMA_KIND__VMA_VDSO)
		pm->vdso_text = vma->start;
}

/*
 * The reservation around the areas is given back: a hole of at least a page keeps the
 * kernel from merging neighbouring areas (the restorer's mremap needs each to be exactly
 * one mapping), as a PROT_NONE page would, without costing a mapping per area
 * (vm.max_map_count is 65530: a tree with 40000 mappings would not fit twice). Whatever
 * crest maps into a hole later goes with the whole area at the end of the restorer.
 */
static void release_gap(uint64_t from, uint64_t to)
{
	if (to > from)
		munmap((void *)from, to - from);
}

static int premap_all(struct premap_ctx *c, struct mem_premap *pm,
		      int (*shmem_fd)(void *, uint64_t), void *arg)
{
	const struct mem_map *map = c->map;
	uint64_t cursor = pm->area_start + PAGE, gap_start = pm->area_start;

	for (size_t i = 0; i < map->nr_vmas; i++) {
		const VmaEntry *vma = map->vmas[i];
		struct rst_vma *rv;
		int ret;

		note_vdso(vma, pm);
		if (!vma_premapped(vma))
			continue;
		/*
		 * Same offset in a 2 MiB block as the final address: mremap then moves
		 * huge pages whole instead of splitting them into 4 KiB entries.
		 */
		if (c->thp && vma_thp_candidate(vma))
			cursor += (vma->start - cursor) & (HPAGE - 1);
		release_gap(gap_start, cursor);
		ret = premap_one(c->pid, vma, cursor, shmem_fd, arg);
		if (ret)
			return ret;
		c->premap_addr[i] = cursor;
		rv = &pm->vmas[pm->nr_vmas++];
		rv->premap = cursor;
		rv->start = vma->start;
		rv->len = vma->end - vma->start;
		rv->prot = vma->prot;
		gap_start = cursor + rv->len;
		cursor = gap_start + PAGE;
	}
	release_gap(gap_start, pm->area_start + pm->area_len);
	return 0;
}

static int reserve_area(const struct mem_map *map, uint64_t len, uint64_t *ret)
{
	struct mem_range *avoid = NULL;
	size_t nr = 0, cap = 0;
	int err = mem_map_ranges(map, &avoid, &nr, &cap);

	if (!err)
		err = mem_reserve_free(avoid, nr, len, ret);
	free(avoid);
	return err;
}

/* Advice is set on the premapped copies; mremap carries it to the final addresses. */
static int restore_advice(const struct premap_ctx *c)
{
	for (size_t i = 0; i < c->map->nr_vmas; i++) {
		int ret;

		if (!c->premap_addr[i])
			continue;
		ret = madv_restore(c->pid, c->map->vmas[i], c->premap_addr[i], c->thp_hinted[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int mem_premap(struct img_dir *dir, pid_t pid, const struct mem_map *map, bool thp,
	       int (*shmem_fd)(void *arg, uint64_t ino), void *arg, struct mem_premap *ret)
{
	struct premap_ctx c = { .pid = pid, .map = map, .thp = thp && madv_thp_mode() != THP_NEVER };
	struct mem_premap pm = { 0 };
	char id[16];
	int err = -ENOMEM;

	pm.area_len = premap_total(map, c.thp);
	c.premap_addr = xzalloc(map->nr_vmas * sizeof(*c.premap_addr) + 1);
	c.thp_hinted = xzalloc(map->nr_vmas * sizeof(*c.thp_hinted) + 1);
	pm.vmas = xzalloc(map->nr_vmas * sizeof(*pm.vmas) + 1);
	if (!c.premap_addr || !c.thp_hinted || !pm.vmas)
		goto out;
	err = reserve_area(map, pm.area_len, &pm.area_start);
	if (!err)
		err = premap_all(&c, &pm, shmem_fd, arg);
	snprintf(id, sizeof(id), "%d", pid);
	if (!err)
		err = mem_fill_pages(dir, id, &private_fill, &c, &pm.bytes_read);
	if (!err)
		err = restore_advice(&c);
	if (err) {
		if (pm.area_start)
			munmap((void *)pm.area_start, pm.area_len);
		goto out;
	}
	*ret = pm;
	pm.vmas = NULL;
out:
	free(pm.vmas);
	free(c.thp_hinted);
	free(c.premap_addr);
	return err;
}
