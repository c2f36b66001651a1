/*
 * The mapping list of a process: parsed from /proc/PID/smaps at dump, stored in mm-<pid>.img.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/madv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "image/img.h"
#include "infect/infect.h"
#include "ns/ns.h"
#include "util/log.h"
#include "util/util.h"

/* One header line of /proc/PID/smaps: "start-end perms offset maj:min inode   path". */
static int parse_vma_header(const char *line, VmaEntry *vma, char *path, size_t path_len)
{
	unsigned long long start, end, off, ino;
	unsigned int maj, min;
	char perms[8];
	int n = 0;

	if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
		   &min, &ino, &n) < 7)
		return -EINVAL;
	vma->start = start;
	vma->end = end;
	vma->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		    (perms[2] == 'x' ? PROT_EXEC : 0);
	vma->flags = perms[3] == 's' ? MAP_SHARED : MAP_PRIVATE;
	vma->pgoff = off;
	vma->has_pgoff = true;
	vma->dev = makedev(maj, min);
	vma->has_dev = true;
	vma->ino = ino;
	vma->has_ino = true;
	snprintf(path, path_len, "%s", line + n);
	path[strcspn(path, "\n")] = '\0';
	return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && !strcmp(s + ls - lx, suffix);
}

/*
 * A mapping of a deleted file can be restored only through a descriptor of the same process
 * on that file: the descriptor's kind ("ghost") saves the contents and recreates the file,
 * and premap maps the recreated file found among the process's descriptors by its name.
 */
static bool holds_inode(pid_t pid, const VmaEntry *vma)
{
	char dir[64], path[340];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	d = opendir(dir);
	while (d && !found && (de = readdir(d))) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		found = de->d_name[0] != '.' && !stat(path, &st) && st.st_ino == vma->ino &&
			st.st_dev == vma->dev && st.st_nlink == 0;
	}
	if (d)
		closedir(d);
	return found;
}

/*
 * A SysV attach shows as "/SYSV%08x (deleted)" (the key it was created with), its inode
 * number being the shmid (ipc/shm.c newseg()). Its contents are the segment's, saved with the
 * ipc namespace, never as pages of the process.
 */
static int classify_sysv(pid_t pid, VmaEntry *vma, const char *path)
{
	if (!ns_ipc_is_own(pid)) {
		pr_err("pid %d: mapping %" PRIx64 "-%" PRIx64 " of SysV shared memory segment %" PRIu64 ": crest saves SysV IPC only in a tree with an ipc namespace of its own",
		       pid, vma->start, vma->end, vma->ino);
		return -EOPNOTSUPP;
	}
	vma->kind = VMA_KIND__VMA_SYSV_SHM;
	/* SHM_RDONLY cleared by parse_vmflags when it sees "mw" */
	vma->has_shm_flags = true;
	vma->shm_flags = SHM_RDONLY | (vma->prot & PROT_EXEC ? SHM_EXEC : 0);
	vma->path = xstrdup(path);
	return vma->path ? 0 : -ENOMEM;
}

/*
 * Decides what a mapping is from its name. Shared anonymous memory shows as "/dev/zero
 * (deleted)" and memfd as "/memfd:NAME (deleted)": both are shmem objects whose contents we
 * save once. Returns -EOPNOTSUPP, after saying why, for mappings crest cannot restore.
 */
static int classify_vma(pid_t pid, VmaEntry *vma, const char *path)
{
	static const struct { const char *name; VmaKind kind; } special[] = {
		{ "[vdso]", VMA_KIND__VMA_VDSO },
		{ "[vvar]", VMA_KIND__VMA_VVAR },
		{ "[vvar_vclock]", VMA_KIND__VMA_VVAR_VCLOCK },
		{ "[vsyscall]", VMA_KIND__VMA_VSYSCALL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(special); i++) {
		if (!strcmp(path, special[i].name)) {
			vma->kind = special[i].kind;
			return 0;
		}
	}
	if (!strcmp(path, "/dev/zero (deleted)") ||
	    (!strncmp(path, "/memfd:", 7) && has_suffix(path, " (deleted)"))) {
		vma->kind = VMA_KIND__VMA_SHMEM;
		vma->path = xstrdup(path);
		return vma->path ? 0 : -ENOMEM;
	}
	if (!strncmp(path, "/SYSV", 5) && has_suffix(path, " (deleted)") && (vma->flags & MAP_SHARED))
		return classify_sysv(pid, vma, path);
	if (path[0] == '/') {
		if (has_suffix(path, " (deleted)") && !holds_inode(pid, vma)) {
			pr_err("pid %d: mapping %" PRIx64 "-%" PRIx64 " of deleted file %s that the process holds no descriptor of: not supported yet",
			       pid, vma->start, vma->end, path);
			return -EOPNOTSUPP;
		}
		vma->kind = VMA_KIND__VMA_FILE;
		vma->path = xstrdup(path);
		return vma->path ? 0 : -ENOMEM;
	}
	if (path[0] == '\0' || !strcmp(path, "[heap]") || !strncmp(path, "[stack", 6) ||
	    !strncmp(path, "[anon:", 6)) {
		if (vma->flags & MAP_SHARED) {
			pr_err("pid %d: shared mapping %" PRIx64 "-%" PRIx64 " without a file: not supported",
			       pid, vma->start, vma->end);
			return -EOPNOTSUPP;
		}
		vma->kind = VMA_KIND__VMA_ANON;
		return 0;
	}
	pr_err("pid %d: mapping %" PRIx64 "-%" PRIx64 " %s: cannot checkpoint this kind of mapping",
	       pid, vma->start, vma->end, path);
	return -EOPNOTSUPP;
}

/*
 * "VmFlags: rd wr mr mw me gd ac": growsdown, advice, whether a shared memory mapping may ever
 * be made writable ("mw"), and device mappings we must refuse.
 */
static int parse_vmflags(pid_t pid, VmaEntry *vma, const char *flags)
{
	bool maywrite = false;

	for (const char *p = flags; *p; p += 3) {
		if (!strncmp(p, "gd", 2))
			vma->flags |= MAP_GROWSDOWN;
		maywrite |= !strncmp(p, "mw", 2);
		if (!strncmp(p, "mw", 2) && vma->kind == VMA_KIND__VMA_SYSV_SHM)
			vma->shm_flags &= ~SHM_RDONLY;
		vma->madv |= madv_of_vmflag(p);
		vma->has_madv = vma->madv != 0;
		if ((!strncmp(p, "io", 2) || !strncmp(p, "pf", 2)) &&
		    vma->kind != VMA_KIND__VMA_VVAR && vma->kind != VMA_KIND__VMA_VVAR_VCLOCK &&
		    vma->kind != VMA_KIND__VMA_VSYSCALL) {
			pr_err("pid %d: mapping %" PRIx64 "-%" PRIx64 " is device memory (VmFlags %.2s): cannot checkpoint it",
			       pid, vma->start, vma->end, p);
			return -EOPNOTSUPP;
		}
		if (!p[2])
			break;
	}
	if (vma->kind == VMA_KIND__VMA_SHMEM && !maywrite)
		vma->has_no_maywrite = vma->no_maywrite = true;
	return 0;
}

static int add_vma(struct mem_map *map, size_t *cap, VmaEntry **ret)
{
	VmaEntry *vma;

	if (xgrow((void **)&map->vmas, cap, map->nr_vmas + 1, sizeof(*map->vmas)))
		return -ENOMEM;
	vma = xmalloc(sizeof(*vma));
	if (!vma)
		return -ENOMEM;
	vma_entry__init(vma);
	map->vmas[map->nr_vmas++] = vma;
	*ret = vma;
	return 0;
}

static int parse_smaps(pid_t pid, struct mem_map *map)
{
	char fname[64], path[PATH_MAX + 32], *line = NULL;
	VmaEntry *vma = NULL;
	size_t cap = 0, llen = 0;
	int ret = 0;
	FILE *f;

	snprintf(fname, sizeof(fname), "/proc/%d/smaps", pid);
	f = fopen(fname, "re");
	if (!f) {
		pr_perror("pid %d: cannot open %s", pid, fname);
		return -errno;
	}
	while (!ret && getline(&line, &llen, f) > 0) {
		char *colon = strchr(line, ':'), *space = strchr(line, ' ');

		/* Key lines are "Name:   value"; header lines have a space before any colon. */
		if (colon && (!space || colon < space)) {
			if (vma && !strncmp(line, "VmFlags:", 8))
				ret = parse_vmflags(pid, vma, line + 9);
			continue;
		}
		ret = add_vma(map, &cap, &vma);
		if (!ret)
			ret = parse_vma_header(line, vma, path, sizeof(path));
		if (!ret)
			ret = classify_vma(pid, vma, path);
	}
	free(line);
	fclose(f);
	return ret;
}

/* Fields of /proc/PID/stat after the command name: 1-based numbering of proc(5). */
static int parse_stat_mm(pid_t pid, MmCore *mm)
{
	unsigned long long v[64] = { 0 };
	char fname[64], *buf, *p;
	int i;

	snprintf(fname, sizeof(fname), "/proc/%d/stat", pid);
	buf = read_file_at(AT_FDCWD, fname, NULL);
	if (!buf) {
		pr_perror("pid %d: cannot read %s", pid, fname);
		return -errno;
	}
	p = strrchr(buf, ')');
	/* p + 2 is field 3 (state); numeric fields follow. */
	for (i = 4, p = p ? strchr(p + 2, ' ') : NULL; p && i < 64; i++) {
		v[i] = strtoull(p + 1, &p, 10);
		if (*p != ' ')
			break;
	}
	free(buf);
	if (i < 51) {
		pr_err("pid %d: %s is shorter than expected (%d fields)", pid, fname, i);
		return -EINVAL;
	}
	mm->start_code = v[26];
	mm->end_code = v[27];
	mm->start_stack = v[28];
	mm->start_data = v[45];
	mm->end_data = v[46];
	mm->start_brk = v[47];
	mm->arg_start = v[48];
	mm->arg_end = v[49];
	mm->env_start = v[50];
	mm->env_end = v[51];
	return 0;
}

static int read_auxv(pid_t pid, MmCore *mm)
{
	char fname[64];
	size_t len;
	uint64_t *buf;

	snprintf(fname, sizeof(fname), "/proc/%d/auxv", pid);
	buf = (uint64_t *)read_file_at(AT_FDCWD, fname, &len);
	if (!buf) {
		pr_perror("pid %d: cannot read %s", pid, fname);
		return -errno;
	}
	mm->n_auxv = len / sizeof(uint64_t);
	mm->auxv = buf;
	return 0;
}

static int read_exe(pid_t pid, MmCore *mm)
{
	char fname[64], target[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(fname, sizeof(fname), "/proc/%d/exe", pid);
	n = readlink(fname, target, sizeof(target) - 1);
	if (n < 0 || stat(fname, &st)) {
		pr_perror("pid %d: cannot read %s", pid, fname);
		return -errno;
	}
	target[n] = '\0';
	mm->exe = xstrdup(target);
	mm->exe_dev = st.st_dev;
	mm->has_exe_dev = true;
	mm->exe_ino = st.st_ino;
	mm->has_exe_ino = true;
	return mm->exe ? 0 : -ENOMEM;
}

/* brk is not in /proc/PID/stat: ask the task itself (brk(0) returns the current break). */
int mem_query_brk(struct infect_ctl *ctl, pid_t pid, uint64_t *ret)
{
	long args[6] = { 0 }, brk;
	int err = infect_syscall(ctl, SYS_brk, args, &brk);

	if (err)
		return pr_errno(err, "pid %d: cannot query brk", pid);
	*ret = brk;
	return 0;
}

int mem_collect(pid_t pid, uint64_t brk, struct mem_map *ret)
{
	struct mem_map map = { 0 };
	int err;

	map.mm = xmalloc(sizeof(*map.mm));
	if (!map.mm)
		return -ENOMEM;
	mm_core__init(map.mm);
	err = parse_stat_mm(pid, map.mm);
	if (!err)
		err = read_auxv(pid, map.mm);
	if (!err)
		err = read_exe(pid, map.mm);
	map.mm->brk = brk;
	if (!err)
		err = parse_smaps(pid, &map);
	if (err) {
		mem_map_free(&map);
		return err;
	}
	*ret = map;
	return 0;
}

void mem_map_free(struct mem_map *map)
{
	for (size_t i = 0; i < map->nr_vmas; i++)
		vma_entry__free_unpacked(map->vmas[i], NULL);
	free(map->vmas);
	if (map->mm)
		mm_core__free_unpacked(map->mm, NULL);
	memset(map, 0, sizeof(*map));
}

int mem_write_map(struct img_dir *dir, pid_t pid, const struct mem_map *map)
{
	struct img *img = img_create(dir, IMG_MAGIC_MM, "mm-%d.img", pid);
	int ret;

	if (!img)
		return -errno;
	ret = img_write_msg(img, &map->mm->base);
	for (size_t i = 0; !ret && i < map->nr_vmas; i++)
		ret = img_write_msg(img, &map->vmas[i]->base);
	if (!ret)
		ret = img_close(img);
	else
		img_close(img);
	return ret;
}

int mem_read_map(struct img_dir *dir, pid_t pid, struct mem_map *ret)
{
	struct mem_map map = { 0 };
	struct img *img = img_open(dir, IMG_MAGIC_MM, "mm-%d.img", pid);
	int err;

	if (!img) {
		if (errno == ENOENT)
			pr_err("mm-%d.img: missing from the image", pid);
		return -errno;
	}
	err = img_read(img, mm_core, &map.mm);
	if (!err && !map.mm) {
		pr_err("mm-%d.img: empty", pid);
		err = -EINVAL;
	}
	if (!err)
		err = img_read_rest(img, vma_entry, &map.vmas, &map.nr_vmas);
	img_close(img);
	if (err) {
		mem_map_free(&map);
		return err;
	}
	*ret = map;
	return 0;
}

/* Mappings that crest recreates itself (vsyscall is the kernel's, at a fixed address). */
static bool vma_restorable(const VmaEntry *vma)
{
	return vma->kind != VMA_KIND__VMA_VSYSCALL;
}

int mem_map_ranges(const struct mem_map *map, struct mem_range **ranges, size_t *nr, size_t *cap)
{
	for (size_t i = 0; i < map->nr_vmas; i++) {
		if (!vma_restorable(map->vmas[i]))
			continue;
		if (xgrow((void **)ranges, cap, *nr + 1, sizeof(**ranges)))
			return -ENOMEM;
		(*ranges)[*nr].start = map->vmas[i]->start;
		(*ranges)[*nr].end = map->vmas[i]->end;
		(*nr)++;
	}
	return 0;
}

static int cmp_range(const void *a, const void *b)
{
	const struct mem_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static bool overlaps(const struct mem_range *avoid, size_t n, uint64_t start, uint64_t len)
{
	for (size_t i = 0; i < n; i++)
		if (start < avoid[i].end && avoid[i].start < start + len)
			return true;
	return false;
}

/* Tries addr with MAP_FIXED_NOREPLACE, which also refuses our own current mappings. */
static bool try_reserve(uint64_t addr, uint64_t len)
{
	void *p = mmap((void *)addr, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);

	if (p == MAP_FAILED)
		return false;
	if ((uint64_t)p != addr) {	/* old kernels ignore the flag: treat as a hint */
		munmap(p, len);
		return false;
	}
	return true;
}

/*
 * First let the kernel choose (it avoids our mappings); if that lands on the target's layout,
 * walk the gaps above each avoided range, high addresses first, where crest rarely is.
 */
int mem_reserve_free(const struct mem_range *avoid, size_t nr_avoid, uint64_t len, uint64_t *ret)
{
	const uint64_t top = 0x7ffffffff000ULL, gap = 16 << 20;
	struct mem_range *sorted;
	void *p;

	len = ALIGN_UP(len, PAGE_SIZE_4K);
	p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p != MAP_FAILED && !overlaps(avoid, nr_avoid, (uint64_t)p, len)) {
		*ret = (uint64_t)p;
		return 0;
	}
	if (p != MAP_FAILED)
		munmap(p, len);
	sorted = xmalloc((nr_avoid + 1) * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	memcpy(sorted, avoid, nr_avoid * sizeof(*sorted));
	qsort(sorted, nr_avoid, sizeof(*sorted), cmp_range);
	for (size_t i = nr_avoid; i-- > 0;) {
		uint64_t start = ALIGN_UP(sorted[i].end + gap, 1 << 21);
		uint64_t limit = i + 1 < nr_avoid ? sorted[i + 1].start : top;

		if (start + len + gap <= limit && try_reserve(start, len)) {
			free(sorted);
			*ret = start;
			return 0;
		}
	}
	free(sorted);
	pr_err("no free address range of %" PRIu64 " bytes outside the restored layout", len);
	return -ENOMEM;
}
