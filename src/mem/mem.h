/*
 * Memory: the mappings of a process (VMAs), their page contents, and shared memory objects.
 *
 * Dump reads the mapping list from /proc/PID/smaps, finds the pages worth saving with
 * PAGEMAP_SCAN (present or swapped, not the zero page, not unmodified file pages) and copies
 * them with process_vm_readv into a reused buffer; all-zero pages are dropped.
 * Restore premaps every mapping at a temporary address, populates it in bulk
 * (MADV_POPULATE_WRITE) and reads the pages straight into it; the restorer moves them.
 */
#ifndef CREST_MEM_MEM_H
#define CREST_MEM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mm.pb-c.h"

struct img_dir;
struct infect_ctl;
struct rst_vma;

/* The mappings of one process, as dumped or as read back from mm-<pid>.img. */
struct mem_map {
	MmCore *mm;
	VmaEntry **vmas;	/* sorted by start */
	size_t nr_vmas;
};

/* Dump: the current program break of pid, asked through ctl (brk(0)). */
int mem_query_brk(struct infect_ctl *ctl, pid_t pid, uint64_t *ret);
/*
 * Dump: reads mm fields, auxv, exe and every VMA of pid (stopped). Call it only once no
 * remote-call scratch area is mapped in the target any more, or the list would show it.
 */
int mem_collect(pid_t pid, uint64_t brk, struct mem_map *ret);
/* Writes mm-<pid>.img. */
int mem_write_map(struct img_dir *dir, pid_t pid, const struct mem_map *map);
void mem_map_free(struct mem_map *map);

/*
 * Dump: writes pagemap-<pid>.img and pages-<pid>.img with the private pages of pid worth
 * saving. Fills *ret_bytes with the bytes of page data written.
 */
int mem_dump_pages(struct img_dir *dir, pid_t pid, const struct mem_map *map, uint64_t *ret_bytes);

/*
 * Shared memory objects (MAP_SHARED anonymous memory, memfd): dumped once per object for the
 * whole tree, however many processes map it.
 */
struct mem_shmem_set;
struct mem_shmem_set *mem_shmem_set_new(void);
void mem_shmem_set_free(struct mem_shmem_set *set);
/* Dump: saves the object behind vma of pid unless already saved (pagemap-shmem-<ino>.img). */
int mem_shmem_dump(struct img_dir *dir, struct mem_shmem_set *set, pid_t pid, VmaEntry *vma);
/*
 * Dump: whether object ino was saved by mem_shmem_dump() (it is mapped in the tree), for a
 * descriptor kind of the same object (memfd) that then saves its contents no second time.
 */
bool mem_shmem_dumped(struct img_dir *dir, uint64_t ino);

/*
 * SysV shared memory contents (sysvshm.c), for src/ns/ipc-shm.c. Dump: saves the pages the
 * segment attached at addr (size bytes) has, without creating any, as pagemap-<id>.img and
 * pages-<id>.img. Restore: fills the segment attached at addr from them.
 */
int mem_sysv_dump(struct img_dir *dir, const char *id, const char *addr, uint64_t size);
int mem_sysv_fill(struct img_dir *dir, const char *id, char *addr, uint64_t size);

/* Restore: reads mm-<pid>.img. */
int mem_read_map(struct img_dir *dir, pid_t pid, struct mem_map *ret);
/*
 * Restore: creates the shmem object that vma refers to, with its contents, and returns a
 * descriptor for it (memfd of the same name, or a shared anonymous object).
 */
int mem_shmem_create(struct img_dir *dir, const VmaEntry *vma, int *ret_fd);
/*
 * Restore: the same for an object that a descriptor kind already created (a memfd also open
 * as a descriptor, base_fd): fills it with its contents and returns a new read-write
 * description of it.
 */
int mem_shmem_adopt(struct img_dir *dir, const VmaEntry *vma, int base_fd, int *ret_fd);

/* What a premapped process hands to the restorer. */
struct mem_premap {
	uint64_t area_start;		/* the premap area (one reservation) */
	uint64_t area_len;
	struct rst_vma *vmas;		/* one per mapping to move (malloc) */
	size_t nr_vmas;
	uint64_t vdso_addr;		/* first of vvar/vvar_vclock/vdso, 0 if none */
	uint64_t vdso_text;		/* [vdso] start */
	uint64_t bytes_read;		/* page data read from the image */
};

/*
 * Restore: maps every mapping of map at temporary addresses that avoid both the final layout
 * and crest's own mappings, and fills them from the image. shmem_fd(arg, ino) gives the
 * descriptor of a shared memory object. thp: fill with transparent huge pages where the
 * image holds whole 2 MiB blocks (see madv.c); the mappings' own advice is restored either way.
 */
int mem_premap(struct img_dir *dir, pid_t pid, const struct mem_map *map, bool thp,
	       int (*shmem_fd)(void *arg, uint64_t ino), void *arg, struct mem_premap *ret);

/* An address range. */
struct mem_range {
	uint64_t start;
	uint64_t end;
};
/*
 * Reserves len bytes (PROT_NONE) at an address that overlaps none of avoid[] nor any current
 * mapping of this process. Returns the address via *ret.
 */
int mem_reserve_free(const struct mem_range *avoid, size_t nr_avoid, uint64_t len, uint64_t *ret);
/* The ranges of every restorable mapping in map (appended to *ranges). */
int mem_map_ranges(const struct mem_map *map, struct mem_range **ranges, size_t *nr, size_t *cap);

#endif
