/*
 * inotify: an inotify instance comes back with the same watches (watch descriptors, masks
 * with IN_ONESHOT and IN_EXCL_UNLINK, on a directory, files and a symlink itself), nothing
 * queued that was not queued at dump, the same flags, and it reports events as before.
 *
 *   OUTFILE.idir/       wd 1  IN_CREATE|IN_DELETE              (fd 100)
 *   OUTFILE.idir/f      wd 2  IN_MODIFY|IN_EXCL_UNLINK         (fd 100)
 *   OUTFILE.ig          wd 3, 4 added and removed: the numbers are gone
 *   OUTFILE.ig          wd 5  IN_CLOSE_WRITE|IN_ONESHOT        (fd 100)
 *   OUTFILE.isym        wd 6  IN_ATTRIB|IN_DONT_FOLLOW: the symlink, not OUTFILE.ig (fd 100)
 *   OUTFILE.idir        wd 1  IN_ACCESS|IN_ATTRIB              (fd 101, blocking, FD_CLOEXEC)
 *
 * The events of the removals (IN_IGNORED) were read before "ready", so both queues are empty
 * at dump. The files are left as they were at "ready", so that an image can be restored again.
 */
#include "case.h"

#include <limits.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#define IN1 100
#define IN2 101
#define MAX_LINES 16

static char dir[PATH_MAX], file[PATH_MAX], gfile[PATH_MAX], sym[PATH_MAX], newfile[PATH_MAX];
static char lines1[MAX_LINES][256], lines2[MAX_LINES][256];
static int n1, n2, fl1, fl2;

static int watch(int in, const char *path, uint32_t mask)
{
	int wd = inotify_add_watch(in, path, mask);

	if (wd < 0)
		case_die("inotify_add_watch %s: %m", path);
	return wd;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The "inotify wd:..." lines of fdinfo, sorted (their order follows the kernel's lists). */
static int read_watches(int in, char out[][256])
{
	char buf[8192], *line, *end;
	int n = 0;

	if (case_fdinfo(in, buf, sizeof(buf)) < 0)
		return -1;
	for (line = buf; line && *line && n < MAX_LINES; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (!strncmp(line, "inotify ", 8))
			snprintf(out[n++], 256, "%.255s", line);
	}
	qsort(out, n, sizeof(out[0]), cmp_line);
	return n;
}

static void drain(int in)
{
	char buf[4096];

	while (read(in, buf, sizeof(buf)) > 0)
		;
}

static void setup(void)
{
	int in1 = inotify_init1(IN_NONBLOCK), in2 = inotify_init1(IN_CLOEXEC), fd;

	case_path(dir, sizeof(dir), "idir");
	case_path(file, sizeof(file), "idir/f");
	case_path(newfile, sizeof(newfile), "idir/new");
	case_path(gfile, sizeof(gfile), "ig");
	case_path(sym, sizeof(sym), "isym");
	if (in1 < 0 || in2 < 0)
		case_die("inotify_init1: %m");
	case_move_fd(in1, IN1, 0);
	case_move_fd(in2, IN2, 0);
	fcntl(IN2, F_SETFD, FD_CLOEXEC);
	if (mkdir(dir, 0700) && errno != EEXIST)
		case_die("mkdir %s: %m", dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1 || close(fd))
		case_die("%s: %m", file);
	fd = open(gfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || close(fd))
		case_die("%s: %m", gfile);
	unlink(sym);
	if (symlink(gfile, sym))
		case_die("symlink %s: %m", sym);

	if (watch(IN1, dir, IN_CREATE | IN_DELETE) != 1 ||
	    watch(IN1, file, IN_MODIFY | IN_EXCL_UNLINK) != 2)
		case_die("unexpected watch descriptors");
	inotify_rm_watch(IN1, watch(IN1, gfile, IN_OPEN));
	inotify_rm_watch(IN1, watch(IN1, gfile, IN_OPEN));
	if (watch(IN1, gfile, IN_CLOSE_WRITE | IN_ONESHOT) != 5 ||
	    watch(IN1, sym, IN_ATTRIB | IN_DONT_FOLLOW) != 6)
		case_die("unexpected watch descriptors after removals");
	watch(IN2, dir, IN_ACCESS | IN_ATTRIB);
	drain(IN1);
	n1 = read_watches(IN1, lines1);
	n2 = read_watches(IN2, lines2);
	fl1 = fcntl(IN1, F_GETFL);
	fl2 = fcntl(IN2, F_GETFL);
	if (n1 != 4 || n2 != 1)
		case_die("setup: fdinfo shows %d and %d watches", n1, n2);
}

static void check_watches(int in, char want[][256], int n_want)
{
	char now[MAX_LINES][256];
	int n = read_watches(in, now);

	case_check(n == n_want, "fd %d: %d watches, want %d", in, n, n_want);
	for (int i = 0; i < n && i < n_want; i++)
		case_check(!strcmp(now[i], want[i]), "fd %d: watch\n  %s\nwant\n  %s", in, now[i],
			   want[i]);
}

/* Events read from IN1 and not yet checked. */
static char evbuf[4096] __attribute__((aligned(8)));
static ssize_t evlen, evoff;

/* The next event of IN1 (non-blocking), or NULL. */
static struct inotify_event *next_event(void)
{
	struct inotify_event *ev;

	if (evoff >= evlen) {
		evoff = 0;
		evlen = read(IN1, evbuf, sizeof(evbuf));
		if (evlen < (ssize_t)sizeof(*ev))
			return NULL;
	}
	ev = (struct inotify_event *)(evbuf + evoff);
	evoff += sizeof(*ev) + ev->len;
	return ev;
}

static void expect_event(int wd, uint32_t mask, const char *what)
{
	struct inotify_event *ev = next_event();

	if (!ev) {
		case_fail("%s: no event (read: %m)", what);
		return;
	}
	case_check(ev->wd == wd && ev->mask == mask, "%s: event wd %d mask %#x, want wd %d mask %#x",
		   what, ev->wd, ev->mask, wd, mask);
}

static void expect_none(const char *what)
{
	struct inotify_event *ev = next_event();

	case_check(!ev, "%s: unexpected event wd %d mask %#x", what, ev ? ev->wd : 0,
		   ev ? ev->mask : 0);
}

static void check_events(void)
{
	struct timespec times[2] = { { 0, UTIME_NOW }, { 0, UTIME_NOW } };
	int fd, wd;

	expect_none("right after restore");
	fd = open(newfile, O_WRONLY | O_CREAT, 0600);
	close(fd);
	expect_event(1, IN_CREATE, "create in the directory");
	unlink(newfile);
	expect_event(1, IN_DELETE, "delete in the directory");
	fd = open(file, O_WRONLY);
	if (fd < 0 || pwrite(fd, "x", 1, 0) != 1)
		case_fail("%s: %m", file);
	close(fd);
	expect_event(2, IN_MODIFY, "write to the file");
	if (utimensat(AT_FDCWD, sym, times, AT_SYMLINK_NOFOLLOW))
		case_fail("utimensat %s: %m", sym);
	expect_event(6, IN_ATTRIB, "touch the symlink");
	fd = open(gfile, O_WRONLY);
	close(fd);
	expect_event(5, IN_CLOSE_WRITE, "close the one-shot file");
	expect_event(5, IN_IGNORED, "one-shot watch ends");
	expect_none("after the one-shot watch");
	wd = inotify_add_watch(IN1, dir, IN_CREATE);
	case_check(wd == 1, "re-adding the directory gave wd %d, want 1", wd);
	wd = inotify_add_watch(IN1, gfile, IN_OPEN);
	case_check(wd == 7, "a new watch got wd %d, want 7", wd);
	inotify_rm_watch(IN1, wd);
	drain(IN1);
}

static void sabotage(void)
{
	char path[PATH_MAX];

	if (case_sabotage("mask"))
		inotify_add_watch(IN1, file, IN_MODIFY | IN_ATTRIB);
	if (case_sabotage("wd")) {
		inotify_rm_watch(IN1, 6);
		inotify_add_watch(IN1, sym, IN_ATTRIB | IN_DONT_FOLLOW);
		drain(IN1);
	}
	if (case_sabotage("queued")) {
		/* what a restore that leaves the burnt watches' IN_IGNORED behind gives */
		case_path(path, sizeof(path), "idir/q");
		close(open(path, O_WRONLY | O_CREAT, 0600));
		unlink(path);
	}
	if (case_sabotage("flags"))
		fcntl(IN2, F_SETFL, O_NONBLOCK);
	if (case_sabotage("follow"))
		inotify_add_watch(IN1, sym, IN_ATTRIB);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	setup();
	case_ready_wait();

	sabotage();
	case_check_fl(IN1, fl1);
	case_check_fl(IN2, fl2);
	case_check(fcntl(IN2, F_GETFD) == FD_CLOEXEC, "fd %d lost FD_CLOEXEC", IN2);
	check_watches(IN1, lines1, n1);
	check_watches(IN2, lines2, n2);
	check_events();
	case_finish();
}
