/*
 * The advice a mapping carries (madvise flags, as smaps "VmFlags" shows them), and the use of
 * transparent huge pages to fill memory at restore.
 *
 * Why huge pages: on a machine where every new page-table entry is expensive (shadow paging:
 * 10-16 us per faulted 4 KiB page, and reads into freshly populated 4 KiB pages run at a
 * fraction of copy speed), populating a private area with 2 MiB pages and reading into them
 * is several times faster. crest does it only where the image holds every page of an
 * aligned 2 MiB block (so the process gets no memory it did not have), and then sets the
 * mapping's hugepage advice back to what the original had, as far as the kernel allows:
 * there is no madvise that clears MADV_HUGEPAGE without setting MADV_NOHUGEPAGE, so in
 * "madvise" THP mode a mapping that had neither comes back with MADV_NOHUGEPAGE, which in
 * that mode behaves the same (no huge page on a later fault). `--no-thp` turns this off.
 */
#define LOG_PREFIX "mem: "
#include "mem/mem.h"
#include "mem/madv.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "util/kernel-compat.h"
#include "util/log.h"
#include "util/util.h"

#define HPAGE (2UL << 20)

/* VmFlags mnemonics (fs/proc/task_mmu.c) of the advice crest restores, and its madvise. */
static const struct {
	char flag[3];
	int advice;
} vmflag_advice[] = {
	{ "sr", MADV_SEQUENTIAL },
	{ "rr", MADV_RANDOM },
	{ "dc", MADV_DONTFORK },
	{ "dd", MADV_DONTDUMP },
	{ "wf", MADV_WIPEONFORK },
	{ "hg", MADV_HUGEPAGE },
	{ "nh", MADV_NOHUGEPAGE },
	{ "mg", MADV_MERGEABLE },
};

uint64_t madv_of_vmflag(const char *flag)
{
	for (size_t i = 0; i < ARRAY_SIZE(vmflag_advice); i++)
		if (!strncmp(flag, vmflag_advice[i].flag, 2))
			return 1ULL << vmflag_advice[i].advice;
	return 0;
}

static enum thp_mode read_thp_mode(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	safe_close(fd);
	if (n <= 0)
		return THP_NEVER;
	if (strstr(buf, "[always]"))
		return THP_ALWAYS;
	return strstr(buf, "[madvise]") ? THP_MADVISE : THP_NEVER;
}

enum thp_mode madv_thp_mode(void)
{
	static int mode = -1;

	if (mode < 0)
		mode = read_thp_mode();
	return mode;
}

/*
 * Called for a run of pages about to be filled at dest (premapped at an address congruent to
 * its final one modulo 2 MiB): asks for huge pages on the 2 MiB blocks the run covers whole.
 * Returns true if it did, so that the mapping's advice is set back afterwards.
 */
bool madv_thp_hint(char *dest, uint64_t len)
{
	uint64_t from = ALIGN_UP((uint64_t)dest, HPAGE), to = ((uint64_t)dest + len) & ~(HPAGE - 1);

	if (madv_thp_mode() != THP_MADVISE || to <= from)
		return false;
	if (madvise((void *)from, to - from, MADV_HUGEPAGE)) {
		pr_debug("MADV_HUGEPAGE on %" PRIx64 "-%" PRIx64 " failed (%s)", from, to,
			 strerror(errno));
		return false;
	}
	return true;
}

/*
 * The hugepage advice to leave on a mapping: its own, or, where crest asked for huge pages
 * on a mapping that had no advice, MADV_NOHUGEPAGE (see the top of this file).
 */
static uint64_t final_advice(uint64_t madv, bool thp_hinted)
{
	uint64_t thp_bits = 1ULL << MADV_HUGEPAGE | 1ULL << MADV_NOHUGEPAGE;

	if (thp_hinted && !(madv & thp_bits))
		madv |= 1ULL << MADV_NOHUGEPAGE;
	return madv;
}

int madv_restore(pid_t pid, const VmaEntry *vma, uint64_t addr, bool thp_hinted)
{
	uint64_t madv = final_advice(vma->has_madv ? vma->madv : 0, thp_hinted);
	uint64_t len = vma->end - vma->start;

	for (int advice = 0; madv; advice++) {
		if (!(madv & (1ULL << advice)))
			continue;
		madv &= ~(1ULL << advice);
		if (madvise((void *)addr, len, advice))
			return pr_errno(-errno, "pid %d: cannot restore the advice (madvise %d) of %" PRIx64 "-%" PRIx64,
					pid, advice, vma->start, vma->end);
	}
	return 0;
}
