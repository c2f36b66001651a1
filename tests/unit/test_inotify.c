/*
 * Unit test of the "inotify" kind on this process's own descriptors: watches read from
 * fdinfo with their paths found by file handle, restored into a new instance with the same
 * watch descriptors (a removed one in between) and masks and nothing queued; a watch line
 * without a file handle refused with the message the user will see. Exits 0 when all pass.
 */
#define LOG_PREFIX "test_inotify: "

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files/files.h"
#include "util/log.h"
#include "util/util.h"

#include "inotify.pb-c.h"
#include "unit.h"

extern const struct fd_kind fd_kind_inotify;

static char tmpdir[] = "/tmp/crest-test-inotify.XXXXXX";
static char logpath[4200], file[4200];


static int dump(int in, const char *text, InotifyFile **ret)
{
	char *real = text ? NULL : unit_fdinfo_of(in);
	struct stat st;
	struct fd_dump_arg a = { .pid = getpid(), .fd = in, .lfd = in,
				 .link = "anon_inode:inotify", .st = &st,
				 .fdinfo = text ? text : real, .flags = O_NONBLOCK };
	ProtobufCMessage *rec = NULL;
	int err;

	fstat(in, &st);
	err = fd_kind_inotify.match(&a) ? fd_kind_inotify.dump(&a, &rec) : -ENOTTY;
	free(real);
	*ret = (InotifyFile *)rec;
	return err;
}

/* The watch lines of fd's fdinfo, in wd order (the kernel lists them newest first). */
static void watches_of(int fd, char *out, size_t size)
{
	char *text = unit_fdinfo_of(fd), *lines[16], *line;
	int n = 0;

	for (line = text; line && *line && n < 16; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (!strncmp(line, "inotify ", 8))
			lines[n++] = line;
	}
	out[0] = '\0';
	while (n--)
		snprintf(out + strlen(out), size - strlen(out), "%.*s\n",
			 (int)strcspn(lines[n], "\n"), lines[n]);
	free(text);
}

static void test_dump_and_restore(void)
{
	int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), copy, queued = -1;
	struct fd_open_arg oa = { .pid = getpid() };
	char want[2048], got[2048];
	InotifyFile *inf;

	if (in < 0)
		perror("inotify_init1"), exit(2);
	inotify_add_watch(in, tmpdir, IN_CREATE | IN_ONESHOT);
	inotify_rm_watch(in, inotify_add_watch(in, file, IN_OPEN));
	inotify_add_watch(in, file, IN_MODIFY | IN_EXCL_UNLINK);
	watches_of(in, want, sizeof(want));
	CHECK(dump(in, NULL, &inf) == 0, "%s", unit_take_log(logpath));
	if (!inf)
		return;
	CHECK(inf->n_watches == 2 && inf->watches[0]->wd == 1 && inf->watches[1]->wd == 3,
	      "%zu watches", inf->n_watches);
	CHECK(inf->n_watches == 2 && !strcmp(inf->watches[1]->path, file), "path %s",
	      inf->watches[1]->path);
	CHECK(strstr(unit_take_log(logpath), "queued events"), "the queued IN_IGNORED was not reported");
	copy = fd_kind_inotify.open(&oa, &inf->base);
	CHECK(copy >= 0, "open: %s", unit_take_log(logpath));
	watches_of(copy, got, sizeof(got));
	CHECK(!strcmp(want, got), "restored\n%swant\n%s", got, want);
	CHECK(!ioctl(copy, FIONREAD, &queued) && queued == 0, "%d bytes queued", queued);
	CHECK(fcntl(copy, F_GETFL) & O_NONBLOCK, "O_NONBLOCK lost");
	protobuf_c_message_free_unpacked(&inf->base, NULL);
	close(copy);
	close(in);
}

static void test_no_handle(void)
{
	int in = inotify_init1(IN_CLOEXEC);
	InotifyFile *inf = NULL;
	char *msg;

	CHECK(dump(in, "pos:\t0\nflags:\t00\ninotify wd:1 ino:2 sdev:800001 mask:2 ignored_mask:0\n",
		   &inf) == -EINVAL, "accepted");
	msg = unit_take_log(logpath);
	CHECK(strstr(msg, "watch 1 on inode 2 of device 8:1") && strstr(msg, "no file handle"),
	      "%s", msg);
	close(in);
}

int main(void)
{
	int fd;

	if (!mkdtemp(tmpdir))
		return perror("mkdtemp"), 1;
	snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
	snprintf(file, sizeof(file), "%s/watched", tmpdir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return perror(file), 1;
	close(fd);
	log_init(LOG_WARN, logpath);
	test_dump_and_restore();
	test_no_handle();
	unlink(file);
	unlink(logpath);
	rmdir(tmpdir);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test_inotify: all passed\n");
	return 0;
}
