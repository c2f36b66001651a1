/*
 * Unit test of the "epoll" kind on this process's own descriptors: the interest list read
 * from fdinfo, a stale target (its fd number closed, or holding another file) refused with
 * the message the user will see, a malformed fdinfo line refused, and a record restored into
 * a new instance giving the same fdinfo lines (a fired EPOLLONESHOT entry included).
 * Exits 0 when all pass.
 */
#define LOG_PREFIX "test_epoll: "

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files/files.h"
#include "util/log.h"
#include "util/util.h"

#include "epoll.pb-c.h"
#include "unit.h"

extern const struct fd_kind fd_kind_epoll;

static char logpath[] = "/tmp/crest-test-epoll.XXXXXX";


/* Runs the kind's dump on our own fd ep, with fdinfo text (the real one if NULL). */
static int dump(int ep, const char *text, EpollFile **ret)
{
	char *real = text ? NULL : unit_fdinfo_of(ep);
	struct stat st;
	struct fd_dump_arg a = { .pid = getpid(), .fd = ep, .lfd = -1,
				 .link = "anon_inode:[eventpoll]", .st = &st,
				 .fdinfo = text ? text : real };
	ProtobufCMessage *rec = NULL;
	int err;

	fstat(ep, &st);
	err = fd_kind_epoll.match(&a) ? fd_kind_epoll.dump(&a, &rec) : -ENOTTY;
	free(real);
	*ret = (EpollFile *)rec;
	return err;
}

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		perror("epoll_ctl"), exit(2);
}

/* The "tfd:" lines of fd, each cut before " pos:" (the inode differs between instances). */
static void targets_of(int fd, char *out, size_t size)
{
	char *text = unit_fdinfo_of(fd), *line;

	out[0] = '\0';
	for (line = text; line && *line; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (!strncmp(line, "tfd:", 4))
			snprintf(out + strlen(out), size - strlen(out), "%.*s\n",
				 (int)(strstr(line, " pos:") - line), line);
	}
	free(text);
}

static void test_dump_and_restore(void)
{
	int p[2], ep = epoll_create1(EPOLL_CLOEXEC), copy;
	struct fd_open_arg oa = { .pid = getpid() };
	char want[1024], got[1024];
	struct epoll_event ev[2];
	EpollFile *ef;

	if (ep < 0 || pipe(p))
		perror("setup"), exit(2);
	add(ep, p[0], EPOLLIN | EPOLLONESHOT, 0x1234);
	add(ep, p[1], EPOLLOUT | EPOLLET, 0xfeedfacecafe);
	if (write(p[1], "x", 1) != 1 || epoll_wait(ep, ev, 2, 0) != 2)
		perror("fire"), exit(2);
	CHECK(dump(ep, NULL, &ef) == 0, "%s", unit_take_log(logpath));
	if (!ef)
		return;
	CHECK(ef->n_targets == 2 && ef->pid == (uint32_t)getpid(), "%zu targets", ef->n_targets);
	targets_of(ep, want, sizeof(want));
	CHECK(strstr(want, "events: 40000000"), "the one-shot entry did not fire:\n%s", want);
	copy = fd_kind_epoll.open(&oa, &ef->base);
	CHECK(copy >= 0, "open: %s", unit_take_log(logpath));
	CHECK(fd_kind_epoll.restore_late(&oa, &ef->base, copy, true) == 0, "%s", unit_take_log(logpath));
	targets_of(copy, got, sizeof(got));
	CHECK(!strcmp(want, got), "restored\n%swant\n%s", got, want);
	CHECK(fd_kind_epoll.restore_late(&oa, &ef->base, copy, false) == 0, "not the owner");
	protobuf_c_message_free_unpacked(&ef->base, NULL);
	close(copy);
	close(ep);
	close(p[0]);
	close(p[1]);
}

static void test_stale(bool reuse)
{
	int p[2], ep = epoll_create1(EPOLL_CLOEXEC), keep;
	EpollFile *ef = NULL;
	char *msg;

	if (ep < 0 || pipe(p))
		perror("setup"), exit(2);
	add(ep, p[0], EPOLLIN, 1);
	keep = dup(p[0]);
	close(p[0]);
	if (reuse && open("/dev/null", O_RDONLY) != p[0])
		perror("reuse"), exit(2);
	CHECK(dump(ep, NULL, &ef) == -EOPNOTSUPP, "stale target accepted");
	msg = unit_take_log(logpath);
	CHECK(strstr(msg, reuse ? "now holds another file" : "was closed since"), "%s", msg);
	if (ef)
		protobuf_c_message_free_unpacked(&ef->base, NULL);
	if (reuse)
		close(p[0]);
	close(keep);
	close(p[1]);
	close(ep);
}

static void test_malformed(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	EpollFile *ef = NULL;
	char *msg;

	CHECK(dump(ep, "pos:\t0\nflags:\t02\ntfd: 3 events: zz\n", &ef) == -EINVAL, "accepted");
	msg = unit_take_log(logpath);
	CHECK(strstr(msg, "unexpected epoll fdinfo line"), "%s", msg);
	CHECK(dump(ep, "pos:\t0\nflags:\t02\n", &ef) == 0 && ef && !ef->n_targets, "empty");
	if (ef)
		protobuf_c_message_free_unpacked(&ef->base, NULL);
	close(ep);
}

int main(void)
{
	int fd = mkstemp(logpath);

	if (fd < 0)
		return perror("mkstemp"), 1;
	close(fd);
	log_init(LOG_ERROR, logpath);
	test_dump_and_restore();
	test_stale(false);
	test_stale(true);
	test_malformed();
	unlink(logpath);
	if (failures) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test_epoll: all passed\n");
	return 0;
}
