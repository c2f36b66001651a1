/*
 * Unit test of the anon-inode event kinds (eventfd, signalfd, timerfd, pidfd): saved fdinfo
 * samples as 6.1 and 6.18 print them go through each kind's dump, the record through its open,
 * and the new descriptor's own fdinfo must say what the sample said. Damaged or missing lines,
 * and state that cannot be saved, must be refused. Exits 0 when all pass.
 */
#define LOG_PREFIX "test_anonfd: "

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/opts.h"
#include "files/files.h"
#include "util/log.h"

#include "eventfd.pb-c.h"
#include "pidfd.pb-c.h"
#include "signalfd.pb-c.h"
#include "timerfd.pb-c.h"
#include "unit.h"

static struct crest_opts opts;
static struct stat anon_st;


/* Runs kind's dump on a sample fdinfo text; returns its result, the record in *rec. */
static int dump(const char *kind, const char *link, const char *fdinfo, int lfd,
		ProtobufCMessage **rec)
{
	struct fd_dump_arg a = {
		.pid = getpid(), .fd = 99, .lfd = lfd, .link = link, .st = &anon_st,
		.flags = O_RDWR, .fdinfo = fdinfo, .opts = &opts,
	};
	const struct fd_kind *k = fd_kind_by_name(kind);

	*rec = NULL;
	if (!k) {
		CHECK(k, "kind %s is not in the table", kind);
		return -ENOENT;
	}
	CHECK(k->match(&a), "%s does not match link %s", kind, link);
	return k->dump(&a, rec);
}

static int reopen(const char *kind, const ProtobufCMessage *rec)
{
	struct fd_open_arg a = { .pid = getpid(), .id = 1, .opts = &opts };

	return fd_kind_by_name(kind)->open(&a, rec);
}

/* The text after "key" in the fdinfo of our own fd, up to the newline. */
static const char *own_fdinfo(int fd, const char *key)
{
	static char buf[4096], out[256];
	char path[64], *p;
	int f;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	n = f >= 0 ? read(f, buf, sizeof(buf) - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (f >= 0)
		close(f);
	p = strstr(buf, key);
	if (!p)
		return "";
	p += strlen(key);
	p += strspn(p, " \t");
	snprintf(out, sizeof(out), "%.*s", (int)strcspn(p, "\n"), p);
	return out;
}

static void test_eventfd(void)
{
	static const char v618[] = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1038\n"
		"eventfd-count: fffffffffffffffe\neventfd-id: 3\neventfd-semaphore: 1\n";
	static const char v61[] = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\n"
		"eventfd-count:                5\neventfd-id: 3\n";
	static const char bad[] = "pos:\t0\nflags:\t02\neventfd-count: zz\neventfd-semaphore: 0\n";
	const char *link = "anon_inode:[eventfd]";
	ProtobufCMessage *rec;
	EventfdFile *ef;
	int fd;

	CHECK(dump("eventfd", link, v618, -1, &rec) == 0, "6.18 sample refused");
	ef = (EventfdFile *)rec;
	CHECK(ef && ef->count == 0xfffffffffffffffeULL && ef->semaphore, "count/semaphore misread");
	fd = ef ? reopen("eventfd", rec) : -1;
	CHECK(fd >= 0, "open failed");
	CHECK(!strcmp(own_fdinfo(fd, "eventfd-count:"), "fffffffffffffffe"), "count %s",
	      own_fdinfo(fd, "eventfd-count:"));
	CHECK(!strcmp(own_fdinfo(fd, "eventfd-semaphore:"), "1"), "not a semaphore");
	if (fd >= 0)
		close(fd);
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
	/* before 6.5 the semaphore mode cannot be told: refused, never guessed */
	CHECK(dump("eventfd", link, v61, -1, &rec) == -EOPNOTSUPP, "6.1 sample not refused");
	CHECK(dump("eventfd", link, bad, -1, &rec) == -EINVAL, "bad count not refused");
	CHECK(dump("eventfd", link, "pos:\t0\nflags:\t02\n", -1, &rec) == -EINVAL,
	      "missing count not refused");
}

static void test_signalfd(void)
{
	static const char v618[] = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\n"
		"sigmask:\t8000001180000200\n";
	ProtobufCMessage *rec;
	SignalfdFile *sf;
	int fd;

	CHECK(dump("signalfd", "anon_inode:[signalfd]", v618, -1, &rec) == 0, "sample refused");
	sf = (SignalfdFile *)rec;
	CHECK(sf && sf->sigmask == 0x8000001180000200ULL, "mask misread");
	/* signals 32 and 33 (glibc's own) and 64 must come back too */
	fd = sf ? reopen("signalfd", rec) : -1;
	CHECK(fd >= 0, "open failed");
	CHECK(!strcmp(own_fdinfo(fd, "sigmask:"), "8000001180000200"), "mask %s",
	      own_fdinfo(fd, "sigmask:"));
	if (fd >= 0)
		close(fd);
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
	CHECK(dump("signalfd", "anon_inode:[signalfd]", "pos:\t0\nflags:\t02\n", -1, &rec) == -EINVAL,
	      "missing sigmask not refused");
}

/*
 * A disarmed timer with ticks and flags from the sample; our own (disarmed) timerfd stands in
 * for the target's description, so the sample and timerfd_gettime agree.
 */
static void test_timerfd_ticks(int lfd)
{
	static const char text[] = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\nclockid: 7\n"
		"ticks: 9\nsettime flags: 00\nit_value: (0, 0)\nit_interval: (0, 0)\n";
	ProtobufCMessage *rec;
	TimerfdFile *tf;
	int fd;

	CHECK(dump("timerfd", "anon_inode:[timerfd]", text, lfd, &rec) == 0, "sample refused");
	tf = (TimerfdFile *)rec;
	CHECK(tf && tf->clockid == 7 && tf->ticks == 9 && !tf->value_sec && !tf->value_nsec,
	      "sample misread");
	fd = tf ? reopen("timerfd", rec) : -1;
	CHECK(fd >= 0, "open failed");
	CHECK(!strcmp(own_fdinfo(fd, "ticks:"), "9"), "ticks %s", own_fdinfo(fd, "ticks:"));
	CHECK(!strcmp(own_fdinfo(fd, "clockid:"), "7"), "clock %s", own_fdinfo(fd, "clockid:"));
	if (fd >= 0)
		close(fd);
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
}

/* An absolute timer: the record holds the absolute expiry, now + time left. */
static void test_timerfd_absolute(int lfd)
{
	static const char text[] = "pos:\t0\nflags:\t02\nclockid: 0\nticks: 0\nsettime flags: 01\n"
		"it_value: (100, 0)\nit_interval: (2, 500)\n";
	struct itimerspec its = { { 2, 500 }, { 99, 0 } };
	ProtobufCMessage *rec;
	TimerfdFile *tf;
	time_t now = time(NULL);

	timerfd_settime(lfd, 0, &its, NULL);
	CHECK(dump("timerfd", "anon_inode:[timerfd]", text, lfd, &rec) == 0, "sample refused");
	tf = (TimerfdFile *)rec;
	CHECK(tf && tf->settime_flags == TFD_TIMER_ABSTIME && tf->interval_sec == 2 &&
	      tf->interval_nsec == 500, "sample misread");
	CHECK(tf && tf->value_sec >= now + 99 && tf->value_sec <= now + 102,
	      "absolute expiry %lld, want about %lld", tf ? (long long)tf->value_sec : 0LL,
	      (long long)now + 100);
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
}

static void test_timerfd(void)
{
	int lfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	ProtobufCMessage *rec;

	CHECK(lfd >= 0, "timerfd_create: %m");
	test_timerfd_ticks(lfd);
	test_timerfd_absolute(lfd);
	CHECK(dump("timerfd", "anon_inode:[timerfd]", "pos:\t0\nclockid: 1\nticks: 0\n", lfd,
		   &rec) == -EINVAL, "incomplete fdinfo not refused");
	close(lfd);
}

/* A pidfd of a reaped process comes back reaped, with the exit status of the record. */
static void test_pidfd_dead(void)
{
	PidfdFile pf = PIDFD_FILE__INIT;
	int fd;

	pf.flags = O_RDWR;
	pf.pid = -1;
	pf.has_exit_status = true;
	pf.exit_status = 42 << 8;
	fd = reopen("pidfd", &pf.base);
	CHECK(fd >= 0, "open of a dead pidfd failed");
	CHECK(!strcmp(own_fdinfo(fd, "Pid:"), "-1"), "Pid %s", own_fdinfo(fd, "Pid:"));
	CHECK(waitpid(-1, NULL, __WALL | WNOHANG) < 0 && errno == ECHILD, "the helper is left");
	if (fd >= 0)
		close(fd);
	pf.exit_status = SIGCHLD;	/* nothing dies of SIGCHLD */
	CHECK(reopen("pidfd", &pf.base) == -EINVAL, "impossible status not refused");
}

static void test_pidfd(void)
{
	char self[64], parent[64];
	ProtobufCMessage *rec;
	const char *link = "anon_inode:[pidfd]";

	snprintf(self, sizeof(self), "pos:\t0\nflags:\t02000002\nPid:\t%d\nNSpid:\t%d\n", getpid(),
		 getpid());
	snprintf(parent, sizeof(parent), "pos:\t0\nflags:\t02000002\nPid:\t%d\n", getppid());
	opts.pid = getpid();
	CHECK(dump("pidfd", link, self, -1, &rec) == 0, "pidfd of the tree's root refused");
	CHECK(rec && ((PidfdFile *)rec)->pid == getpid(), "Pid misread");
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
	CHECK(dump("pidfd", link, parent, -1, &rec) == -EOPNOTSUPP, "outside process not refused");
	CHECK(dump("pidfd", link, "pos:\t0\nflags:\t02\nPid:\t0\n", -1, &rec) == -EOPNOTSUPP,
	      "process outside the pid namespace not refused");
	CHECK(dump("pidfd", link, "pos:\t0\nflags:\t02\n", -1, &rec) == -EINVAL,
	      "missing Pid not refused");
	CHECK(dump("pidfd", link, "pos:\t0\nflags:\t02\nPid:\t-1\n", -1, &rec) == 0,
	      "reaped process refused");
	CHECK(rec && ((PidfdFile *)rec)->pid == -1 && !((PidfdFile *)rec)->has_exit_status,
	      "reaped process misread");
	if (rec)
		protobuf_c_message_free_unpacked(rec, NULL);
	test_pidfd_dead();
}

int main(void)
{
	log_init(LOG_ERROR, "/dev/null");
	test_eventfd();
	test_signalfd();
	test_timerfd();
	test_pidfd();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("test_anonfd: all passed\n");
	return 0;
}
