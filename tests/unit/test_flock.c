/*
 * Unit test of the lock-line parser (files/flock.c) on lines saved from /proc/PID/fdinfo and
 * /proc/locks of a 6.x kernel, and of its refusal of lines of another shape. Exits 0 when all
 * pass.
 */
#define LOG_PREFIX "test_flock: "

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "files/flock.h"
#include "unit.h"



struct sample {
	const char *line;
	const char *cls;
	bool blocked, write, to_eof;
	int pid;
	unsigned int maj, min;
	uint64_t ino, start, end;
};

static const struct sample good[] = {
	/* fdinfo */
	{ "lock:\t1: POSIX  ADVISORY  WRITE 30468 fe:00:10952852 10 29",
	  "POSIX", false, true, false, 30468, 0xfe, 0, 10952852, 10, 29 },
	{ "lock:\t2: POSIX  ADVISORY  READ 30468 fe:00:10952852 100 EOF",
	  "POSIX", false, false, true, 30468, 0xfe, 0, 10952852, 100, 0 },
	{ "lock:\t1: OFDLCK ADVISORY  WRITE -1 fe:00:10952852 50 59",
	  "OFDLCK", false, true, false, -1, 0xfe, 0, 10952852, 50, 59 },
	{ "lock:\t1: FLOCK  ADVISORY  WRITE 30468 fe:00:10952867 0 EOF",
	  "FLOCK", false, true, true, 30468, 0xfe, 0, 10952867, 0, 0 },
	/* /proc/locks */
	{ "3: FLOCK  ADVISORY  READ 812 00:1f:4242 0 EOF",
	  "FLOCK", false, false, true, 812, 0, 0x1f, 4242, 0, 0 },
	{ "4: -> POSIX  ADVISORY  WRITE 901 08:02:77 0 9",
	  "POSIX", true, true, false, 901, 8, 2, 77, 0, 9 },
	{ "5: LEASE  ACTIVE    READ 1200 fe:00:99 0 EOF",
	  "LEASE", false, false, true, 1200, 0xfe, 0, 99, 0, 0 },
	{ "12: POSIX  ADVISORY  WRITE 7 103:05:18446744073709551615 9223372036854775806 EOF",
	  "POSIX", false, true, true, 7, 0x103, 5, 18446744073709551615ULL, 9223372036854775806ULL, 0 },
};

static const char *const bad[] = {
	"",
	"lock:",
	"pos:\t0",
	"1: POSIX  ADVISORY  WRITE 30468 <none>:0 0 EOF",	/* no inode */
	"1: POSIX  ADVISORY  WRITE 30468 fe:00:10952852 10",
	"1: POSIX  ADVISORY  WRITE 30468 fe:00:10952852 10 2x9",
	"x: POSIX  ADVISORY  WRITE 30468 fe:00:10952852 10 29",
};

static void test_good(void)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct sample *s = &good[i];
		struct flock_line fl;
		int ret = flock_parse_line(s->line, &fl);

		CHECK(ret == 0, "'%s': %d", s->line, ret);
		if (ret)
			continue;
		CHECK(!strcmp(fl.cls, s->cls), "'%s': class %s", s->line, fl.cls);
		CHECK(fl.blocked == s->blocked && fl.write == s->write && fl.to_eof == s->to_eof,
		      "'%s': flags", s->line);
		CHECK(fl.pid == s->pid, "'%s': pid %d", s->line, fl.pid);
		CHECK(fl.maj == s->maj && fl.min == s->min && fl.ino == s->ino, "'%s': inode", s->line);
		CHECK(fl.start == s->start && (s->to_eof || fl.end == s->end), "'%s': range", s->line);
	}
}

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct flock_line fl;

		CHECK(flock_parse_line(bad[i], &fl) == -EINVAL, "'%s' was accepted", bad[i]);
	}
}

int main(void)
{
	test_good();
	test_bad();
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test_flock: all passed\n");
	return 0;
}
