/*
 * fifo: named FIFOs come back open on the same path, with their bytes in flight, capacity,
 * status flags and O_ASYNC owner and signal, both ends still one pipe across processes.
 *
 *   30  OUTFILE.fifo1 O_RDONLY|O_NONBLOCK|O_ASYNC in the parent, 128 KiB capacity, holding
 *       3000 bytes the child wrote; owner: the parent, signal SIGUSR1
 *   31  OUTFILE.fifo1 O_WRONLY in the child
 *   32  OUTFILE.fifo2 O_RDWR in the parent alone, holding 500 bytes it wrote itself
 *   33  OUTFILE.fifo2 O_WRONLY|O_NONBLOCK: another description of the same FIFO
 *
 * After SIGTERM the parent reads what is queued, then the child writes "more!" through 31:
 * the parent must get it through 30, and SIGUSR1 with it (O_ASYNC really armed).
 */
#include "case.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

#define DATA1 3000
#define DATA2 500
#define CAPACITY (128 * 1024)

static struct case_fd pfds[] = { { 30 }, { 32 }, { 33 } };
static struct case_fd cfd = { 31 };
static volatile sig_atomic_t nr_usr1;

static void on_usr1(int sig)
{
	nr_usr1++;
}

static void write_pattern(int fd, size_t len, int seed)
{
	uint8_t buf[DATA1];

	case_pattern_fill(buf, 0, len, seed);
	if (write(fd, buf, len) != (ssize_t)len)
		case_die("write to fd %d: %m", fd);
}

static int queued(int fd)
{
	int n = -1;

	return ioctl(fd, FIONREAD, &n) ? -1 : n;
}

/* Reads len bytes from fd (which holds at least that many) and compares with pattern(seed). */
static void check_data(int fd, size_t len, int seed)
{
	uint8_t buf[DATA1];
	ssize_t n = read(fd, buf, len), bad;

	if (n != (ssize_t)len) {
		case_fail("fd %d: read %zd bytes of %zu: %m", fd, n, len);
		return;
	}
	bad = case_pattern_diff(buf, 0, len, seed);
	if (bad >= 0)
		case_fail("fd %d: byte %zd of the data in flight differs", fd, bad);
}

static __attribute__((noreturn)) void child(void)
{
	case_open_out_at("fifo1", O_WRONLY, 0, 31);	/* the parent's reader is there: no wait */
	write_pattern(31, DATA1, 1);
	case_fd_record(&cfd);
	case_wait();
	case_fd_check(&cfd, 0);
	if (write(31, "more!", 5) != 5)
		case_fail("child: fd 31: write: %m");
	case_child_exit();
}

static void setup_async(void)
{
	struct f_owner_ex o = { F_OWNER_PID, getpid() };
	struct sigaction sa = { .sa_handler = on_usr1 };

	sigaction(SIGUSR1, &sa, NULL);
	if (fcntl(30, F_SETOWN_EX, &o) || fcntl(30, F_SETSIG, SIGUSR1) ||
	    fcntl(30, F_SETFL, fcntl(30, F_GETFL) | O_ASYNC))
		case_die("O_ASYNC on fd 30: %m");
	if (fcntl(30, F_SETPIPE_SZ, CAPACITY) < CAPACITY)
		case_die("F_SETPIPE_SZ: %m");
}

static pid_t setup(void)
{
	char path[PATH_MAX];
	pid_t pid;

	case_path(path, sizeof(path), "fifo1");
	if (mkfifo(path, 0600))
		case_die("mkfifo %s: %m", path);
	case_path(path, sizeof(path), "fifo2");
	if (mkfifo(path, 0600))
		case_die("mkfifo %s: %m", path);
	case_open_out_at("fifo1", O_RDONLY | O_NONBLOCK, 0, 30);
	case_open_out_at("fifo2", O_RDWR, 0, 32);
	case_open_out_at("fifo2", O_WRONLY | O_NONBLOCK, 0, 33);
	write_pattern(32, DATA2, 2);
	pid = case_spawn(child);
	case_wait_until(queued(30) >= DATA1, 2000);
	if (queued(30) != DATA1)
		case_die("the child's %d bytes did not arrive", DATA1);
	setup_async();
	for (size_t i = 0; i < sizeof(pfds) / sizeof(pfds[0]); i++)
		case_fd_record(&pfds[i]);
	return pid;
}

static void sabotage(void)
{
	char c;
	struct f_owner_ex none = { F_OWNER_PID, 0 };

	if (case_sabotage("data") && read(30, &c, 1) != 1)
		case_fail("sabotage: read: %m");
	if (case_sabotage("capacity"))
		fcntl(30, F_SETPIPE_SZ, 65536);
	if (case_sabotage("owner"))
		fcntl(30, F_SETOWN_EX, &none);
	if (case_sabotage("split")) {	/* 33 no longer feeds 32 */
		int p[2];

		if (!pipe2(p, O_NONBLOCK))
			dup2(p[1], 33);
	}
}

static void check_parent(void)
{
	struct f_owner_ex o = { 0 };

	for (size_t i = 0; i < sizeof(pfds) / sizeof(pfds[0]); i++)
		case_fd_check(&pfds[i], 0);
	case_check(fcntl(30, F_GETPIPE_SZ) == CAPACITY, "fd 30: capacity %d, want %d",
		   fcntl(30, F_GETPIPE_SZ), CAPACITY);
	fcntl(30, F_GETOWN_EX, &o);
	case_check(o.type == F_OWNER_PID && o.pid == getpid(), "fd 30: O_ASYNC owner %d:%d, want %d:%d",
		   o.type, o.pid, F_OWNER_PID, getpid());
	case_check(fcntl(30, F_GETSIG) == SIGUSR1, "fd 30: signal %d, want SIGUSR1",
		   fcntl(30, F_GETSIG));
	case_check(queued(30) == DATA1, "fd 30: %d bytes queued, want %d", queued(30), DATA1);
	case_check(queued(32) == DATA2, "fd 32: %d bytes queued, want %d", queued(32), DATA2);
	check_data(30, DATA1, 1);
	check_data(32, DATA2, 2);
	if (write(33, "x", 1) != 1 || queued(32) != 1)
		case_fail("a byte written through fd 33 is not queued for fd 32");
}

int main(int argc, char **argv)
{
	char buf[16] = "";
	pid_t pid;

	case_init(argc, argv);
	pid = setup();
	case_ready_wait();

	sabotage();
	check_parent();
	nr_usr1 = 0;
	case_check_child(pid, "child writing to fd 31");
	case_check(case_wait_until(nr_usr1 > 0, 200),
		   "no SIGUSR1 when the child wrote to the FIFO: O_ASYNC is not armed");
	case_check(read(30, buf, sizeof(buf)) == 5 && !memcmp(buf, "more!", 5),
		   "fd 30: the child's write after restore did not arrive");
	case_finish();
}
