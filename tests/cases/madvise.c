/*
 * madvise: the advice of each mapping comes back, and memory filled with huge pages at
 * restore neither grows nor splits a mapping.
 *
 * Set up before "ready", checked after SIGTERM:
 *   dense      16 MiB written in full, no advice: contents; no "hg" (crest may leave "nh",
 *              which in the "madvise" THP mode behaves as no advice)
 *   huge       8 MiB with MADV_HUGEPAGE, written: contents, "hg" and no "nh"
 *   nohuge     8 MiB with MADV_NOHUGEPAGE, written: contents, "nh" and no "hg"
 *   sparse     16 MiB with one page written per 2 MiB: contents, and still only those pages
 *              resident (a huge page would make it 512 times as many)
 *   flags      MADV_DONTFORK "dc", MADV_WIPEONFORK "wf", MADV_DONTDUMP "dd", MADV_RANDOM
 *              "rr", MADV_SEQUENTIAL "sr": each on its own mapping
 *   maps       /proc/self/maps identical: no mapping split, merged or moved
 */
#include "case.h"

#include <inttypes.h>
#include <sys/mman.h>

#define MIB (1024UL * 1024)

struct region {
	const char *name;
	size_t len;
	int advice;		/* -1: none */
	const char *want;	/* VmFlags it must show */
	const char *never;	/* VmFlags it must not show (NULL: none) */
	size_t stride;		/* a page written every stride bytes */
	uint8_t *p;
};

static struct region regions[] = {
	{ "dense", 16 * MIB, -1, NULL, "hg", 4096 },
	{ "huge", 8 * MIB, MADV_HUGEPAGE, "hg", "nh", 4096 },
	{ "nohuge", 8 * MIB, MADV_NOHUGEPAGE, "nh", "hg", 4096 },
	{ "sparse", 16 * MIB, -1, NULL, "hg", 2 * MIB },
	{ "dontfork", 3 * 4096, MADV_DONTFORK, "dc", NULL, 4096 },
	{ "wipeonfork", 3 * 4096, MADV_WIPEONFORK, "wf", NULL, 4096 },
	{ "dontdump", 3 * 4096, MADV_DONTDUMP, "dd", NULL, 4096 },
	{ "random", 3 * 4096, MADV_RANDOM, "rr", NULL, 4096 },
	{ "sequential", 3 * 4096, MADV_SEQUENTIAL, "sr", NULL, 4096 },
};
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

static char maps_before[65536];

static uint64_t pattern(const struct region *r, size_t off)
{
	return (uint64_t)(uintptr_t)r->p * 31 + off * 7 + 1;
}

/* A page of data every stride bytes; each word differs from its neighbours. */
static void fill(struct region *r)
{
	for (size_t off = 0; off < r->len; off += r->stride)
		for (size_t w = 0; w < 4096; w += 8)
			*(uint64_t *)(r->p + off + w) = pattern(r, off + w);
}

static void check_contents(const struct region *r)
{
	for (size_t off = 0; off < r->len; off += 4096) {
		bool written = off % r->stride == 0;

		for (size_t w = 0; w < 4096; w += 8) {
			uint64_t got = *(uint64_t *)(r->p + off + w);
			uint64_t want = written ? pattern(r, off + w) : 0;

			if (got != want) {
				case_fail("%s: word at +%zu is %#" PRIx64 ", want %#" PRIx64, r->name,
					  off + w, got, want);
				return;
			}
		}
	}
}

/* Guard pages on both sides keep the kernel from merging regions with equal flags. */
static void setup_region(struct region *r)
{
	uint8_t *p = mmap(NULL, r->len + 2 * MIB + 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);

	if (p == MAP_FAILED)
		case_die("mmap %s: %m", r->name);
	/* 2 MiB aligned, so that the large ones hold whole huge-page blocks. */
	r->p = (uint8_t *)(((uintptr_t)p + 4096 + 2 * MIB - 1) & ~(2 * MIB - 1));
	if (mprotect(r->p, r->len, PROT_READ | PROT_WRITE))
		case_die("mprotect %s: %m", r->name);
	if (r->advice >= 0 && madvise(r->p, r->len, r->advice))
		case_die("madvise %s: %m", r->name);
	fill(r);
}

/* The VmFlags line and Rss (KiB) of the mapping starting at p. */
static bool smaps_of(const void *p, char *flags, size_t flags_len, long *rss_kb)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	bool in = false, found = false;

	if (!f)
		case_die("open smaps: %m");
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':'), *space = strchr(line, ' ');

		/* Key lines are "Name:   value"; header lines have a space before any colon. */
		if (!colon || (space && space < colon)) {
			in = strtoul(line, NULL, 16) == (uintptr_t)p;
		} else if (in && !strncmp(line, "Rss:", 4)) {
			*rss_kb = strtol(line + 4, NULL, 10);
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(flags, flags_len, "%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool has_flag(const char *flags, const char *flag)
{
	for (const char *s = flags; (s = strstr(s, flag)); s += 2)
		if ((s == flags || s[-1] == ' ') && (s[2] == ' ' || s[2] == '\n' || !s[2]))
			return true;
	return false;
}

static void check_region(const struct region *r)
{
	char flags[512] = "";
	long rss_kb = -1;

	/* Before the contents: reading a never-written page maps the zero page, counted in Rss. */
	if (!smaps_of(r->p, flags, sizeof(flags), &rss_kb)) {
		case_fail("%s: no mapping starts at %p any more", r->name, r->p);
		return;
	}
	flags[strcspn(flags, "\n")] = '\0';
	case_check(!r->want || has_flag(flags, r->want), "%s: VmFlags%s lack %s", r->name, flags,
		   r->want);
	case_check(!r->never || !has_flag(flags, r->never), "%s: VmFlags%s show %s", r->name,
		   flags, r->never);
	if (r->stride > 4096) {
		long want_kb = (long)(r->len / r->stride) * 4;

		case_check(rss_kb == want_kb, "%s: %ld KiB resident, want %ld", r->name, rss_kb,
			   want_kb);
	}
	check_contents(r);
}

static void read_maps(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	size_t n;

	if (!f)
		case_die("open maps: %m");
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void sabotage(void)
{
	if (case_sabotage("advice"))
		madvise(regions[1].p, regions[1].len, MADV_NOHUGEPAGE);
	if (case_sabotage("resident"))
		regions[3].p[4096] = 0;
	if (case_sabotage("contents"))
		regions[0].p[5 * MIB + 8] ^= 1;
	if (case_sabotage("split"))
		mprotect(regions[0].p, 4096, PROT_READ);
}

int main(int argc, char **argv)
{
	static char maps_after[sizeof(maps_before)];

	case_init(argc, argv);
	for (size_t i = 0; i < NREGIONS; i++)
		setup_region(&regions[i]);
	read_maps(maps_before, sizeof(maps_before));
	case_ready_wait();
	sabotage();
	for (size_t i = 0; i < NREGIONS; i++)
		check_region(&regions[i]);
	read_maps(maps_after, sizeof(maps_after));
	case_check(!strcmp(maps_before, maps_after), "/proc/self/maps differs:\n%s\nwant:\n%s",
		   maps_after, maps_before);
	case_finish();
}
