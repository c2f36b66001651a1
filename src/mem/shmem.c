/*
 * Shared memory objects: MAP_SHARED anonymous memory ("/dev/zero (deleted)") and memfd
 * ("/memfd:NAME (deleted)"). Their contents belong to the object, not to any one process,
 * so they are saved once per object (by inode) from /proc/PID/map_files, whose descriptor
 * reads the object itself, holes included (SEEK_DATA skips what was never written).
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
#include <sys/stat.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

#define PAGE 4096UL

struct shmem_obj {
	uint64_t ino;
	uint64_t size;
};

struct mem_shmem_set {
	struct shmem_obj *objs;
	size_t nr, cap;
};

struct mem_shmem_set *mem_shmem_set_new(void)
{
	return xzalloc(sizeof(struct mem_shmem_set));
}

void mem_shmem_set_free(struct mem_shmem_set *set)
{
	if (set)
		free(set->objs);
	free(set);
}

static struct shmem_obj *shmem_find(struct mem_shmem_set *set, uint64_t ino)
{
	for (size_t i = 0; i < set->nr; i++)
		if (set->objs[i].ino == ino)
			return &set->objs[i];
	return NULL;
}

/*
 * pid 0: the caller, through /proc/self, which names it in the namespace of crest's /proc
 * even when the caller is a restored process in a new pid namespace (getpid() is not).
 */
static int open_map_file(pid_t pid, const VmaEntry *vma, int flags)
{
	char path[96], who[16] = "self";
	int fd;

	if (pid)
		snprintf(who, sizeof(who), "%d", pid);
	snprintf(path, sizeof(path), "/proc/%s/map_files/%" PRIx64 "-%" PRIx64, who,
		 vma->start, vma->end);
	fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		pr_perror("pid %s: cannot open %s (%s)", who, path, vma->path);
	return fd;
}

/* Copies the data ranges of the object (SEEK_DATA/SEEK_HOLE) into the page pipe. */
static int shmem_copy(int fd, uint64_t size, struct page_pipe *pp, const char *name)
{
	off_t data = 0, hole;
	int ret = 0;

	while (!ret && (uint64_t)data < size) {
		data = lseek(fd, data, SEEK_DATA);
		if (data < 0)
			break;	/* ENXIO: no data past this point */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = size;
		hole = ALIGN_UP(hole, PAGE);
		while (!ret && data < hole) {
			size_t len = MIN((size_t)(hole - data), page_buf_size());
			char *buf = page_pipe_buf(pp, len);

			if (!buf)
				return -EIO;	/* the writer failed; page_pipe_close says why */
			ret = pread_all(fd, buf, len, data);
			if (ret == -ENODATA) {	/* a partial last page reads short: pad */
				memset(buf, 0, len);
				ret = pread(fd, buf, len, data) < 0 ? -errno : 0;
			}
			if (!ret)
				ret = page_pipe_add(pp, buf, data, len, false);
			data += len;
		}
	}
	if (ret)
		pr_errno(ret, "%s: cannot copy the shared memory contents", name);
	return ret;
}

int mem_shmem_dump(struct img_dir *dir, struct mem_shmem_set *set, pid_t pid, VmaEntry *vma)
{
	struct shmem_obj *obj = shmem_find(set, vma->ino);
	struct page_pipe *pp;
	struct stat st;
	char id[32];
	int fd, ret;

	if (obj) {
		vma->shmem_size = obj->size;
		vma->has_shmem_size = true;
		return 0;
	}
	fd = open_map_file(pid, vma, O_RDONLY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		close(fd);
		return -errno;
	}
	if (xgrow((void **)&set->objs, &set->cap, set->nr + 1, sizeof(*set->objs))) {
		close(fd);
		return -ENOMEM;
	}
	set->objs[set->nr++] = (struct shmem_obj){ vma->ino, st.st_size };
	vma->shmem_size = st.st_size;
	vma->has_shmem_size = true;
	snprintf(id, sizeof(id), "shmem-%" PRIu64, vma->ino);
	ret = page_pipe_open(dir, id, &pp);
	if (!ret) {
		int closed;

		ret = shmem_copy(fd, st.st_size, pp, vma->path);
		closed = page_pipe_close(pp, NULL);
		if (closed && (!ret || ret == -EIO))
			ret = closed;
	}
	close(fd);
	return ret;
}

/* "/memfd:NAME (deleted)" -> NAME; NULL for shared anonymous memory. */
static char *memfd_name(const char *path)
{
	const char *suffix = " (deleted)";
	size_t len;
	char *name;

	if (strncmp(path, "/memfd:", 7))
		return NULL;
	len = strlen(path + 7) - strlen(suffix);
	name = xmalloc(len + 1);
	if (name) {
		memcpy(name, path + 7, len);
		name[len] = '\0';
	}
	return name;
}

/*
 * Shared anonymous memory has no name to open: create it with mmap and open the object
 * through our own /proc/self/map_files, so that every process maps the same object and its
 * mappings show "/dev/zero (deleted)" as before.
 */
static int create_anon_object(uint64_t size, int *ret_fd)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	VmaEntry tmp = VMA_ENTRY__INIT;

	if (p == MAP_FAILED)
		return pr_errno(-errno, "cannot create shared memory of %" PRIu64 " bytes", size);
	tmp.start = (uint64_t)p;
	tmp.end = (uint64_t)p + size;
	tmp.path = "/dev/zero (deleted)";
	*ret_fd = open_map_file(0, &tmp, O_RDWR);
	munmap(p, size);
	return *ret_fd < 0 ? -errno : 0;
}

static int create_memfd(const char *name, uint64_t size, int *ret_fd)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return pr_errno(-errno, "cannot create memfd %s", name);
	if (ftruncate(fd, size)) {
		close(fd);
		return pr_errno(-errno, "memfd %s: cannot set size %" PRIu64, name, size);
	}
	*ret_fd = fd;
	return 0;
}

struct shmem_fill {
	char *base;
	uint64_t size;
	uint64_t ino;
};

static bool shmem_dest(void *arg, uint64_t off, uint64_t len, struct fill_dest *dest)
{
	struct shmem_fill *f = arg;

	if (off + len > ALIGN_UP(f->size, PAGE)) {
		pr_err("pagemap-shmem-%" PRIu64 ".img: data at %" PRIu64 " past the object's size %" PRIu64,
		       f->ino, off, f->size);
		return false;
	}
	dest->addr = f->base + off;
	dest->area = 0;
	return true;
}

/* No bridging: the object's holes are part of its state (SEEK_HOLE, memory use). */
static const struct fill_ops shmem_fill_ops = { .dest_of = shmem_dest };

/* Writes the saved pages of the object into it, through a temporary shared mapping. */
static int shmem_fill(struct img_dir *dir, const VmaEntry *vma, int fd)
{
	uint64_t size = vma->has_shmem_size ? vma->shmem_size : 0, bytes = 0;
	struct shmem_fill fill = { .size = size, .ino = vma->ino };
	uint64_t map_len = ALIGN_UP(size, PAGE);
	char id[32];
	int ret;

	if (!map_len)
		return 0;
	snprintf(id, sizeof(id), "shmem-%" PRIu64, vma->ino);
	fill.base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fill.base == MAP_FAILED)
		return pr_errno(-errno, "cannot map shared memory %s", vma->path);
	ret = mem_fill_pages(dir, id, &shmem_fill_ops, &fill, &bytes);
	munmap(fill.base, map_len);
	return ret;
}

int mem_shmem_create(struct img_dir *dir, const VmaEntry *vma, int *ret_fd)
{
	uint64_t size = vma->has_shmem_size ? vma->shmem_size : 0;
	_cleanup_free_ char *name = memfd_name(vma->path ? vma->path : "");
	int fd = -1, ret;

	ret = name ? create_memfd(name, size, &fd) : create_anon_object(size, &fd);
	if (!ret)
		ret = shmem_fill(dir, vma, fd);
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	*ret_fd = fd;
	return 0;
}

int mem_shmem_adopt(struct img_dir *dir, const VmaEntry *vma, int base_fd, int *ret_fd)
{
	char path[64];
	int fd, ret;

	/* A description of our own, read-write whatever base_fd's mode (even O_PATH). */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", base_fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "cannot reopen %s read-write", vma->path);
	ret = shmem_fill(dir, vma, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	*ret_fd = fd;
	return 0;
}

bool mem_shmem_dumped(struct img_dir *dir, uint64_t ino)
{
	char name[64];

	snprintf(name, sizeof(name), "pagemap-shmem-%" PRIu64 ".img", ino);
	return imgdir_written(dir, name);
}
