/*
 * epoll: an epoll instance comes back with its whole interest list (fd numbers, events with
 * their flags, data), behaves the same (level vs edge triggered, a fired EPOLLONESHOT entry
 * stays disarmed, EPOLLEXCLUSIVE), a nested epoll still watches the inner one, and the instance
 * is still one description shared with a child.
 *
 *   20  pipe A read end      in inner: EPOLLIN                     data 0x1111 (A holds "a")
 *   21  dup of 20            in inner: EPOLLIN|EPOLLET             data 0x2222 (same file)
 *   22  pipe B read end      in inner: EPOLLIN|EPOLLONESHOT, fired data 0x3333 (B holds "b")
 *   23  pipe C write end     in inner: EPOLLOUT|EPOLLET            data 0x4444
 *   24  pipe D read end      in inner: EPOLLIN|EPOLLEXCLUSIVE      data 0x5555 (D empty)
 *   25  pipe E read end      not in inner at dump: the child adds it after restore
 *   30..34  the write ends of A..E
 *   100 inner epoll, O_NONBLOCK
 *   101 outer epoll          watches 100: EPOLLIN                  data 0x6666
 *
 * After SIGTERM the child adds fd 25 to its fd 100 and exits; the parent must then see the new
 * entry in its own fd 100. Every event the original reported before "ready" was consumed, so
 * an edge-triggered entry may report one spurious event after restore, never a missing one.
 */
#include "case.h"

#include <sys/epoll.h>

#define INNER 100
#define OUTER 101
#define MAX_TARGETS 16

struct target {
	int tfd;
	unsigned int events;
	unsigned long long data;
};

static struct target inner_at_ready[MAX_TARGETS], outer_at_ready[MAX_TARGETS];
static int n_inner, n_outer;

static void make_pipe(int rd, int wr)
{
	int p[2];

	if (pipe2(p, O_NONBLOCK))
		case_die("pipe: %m");
	case_move_fd(p[0], rd, 0);
	case_move_fd(p[1], wr, 0);
}

static void ctl(int ep, int op, int fd, unsigned int events, unsigned long long data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, op, fd, &ev))
		case_die("epoll_ctl(%d, %d, %d): %m", ep, op, fd);
}

static int cmp_target(const void *x, const void *y)
{
	const struct target *a = x, *b = y;

	return a->tfd != b->tfd ? a->tfd - b->tfd : a->data < b->data ? -1 : a->data > b->data;
}

/* The interest list from fdinfo, sorted (fdinfo order follows kernel pointers). */
static int read_targets(int ep, struct target *out)
{
	char buf[8192], *line;
	int n = 0;

	if (case_fdinfo(ep, buf, sizeof(buf)) < 0)
		return -1;
	for (line = buf; line && n < MAX_TARGETS; line = strchr(line, '\n')) {
		line += *line == '\n';
		if (sscanf(line, "tfd: %d events: %x data: %llx", &out[n].tfd, &out[n].events,
			   &out[n].data) == 3)
			n++;
	}
	qsort(out, n, sizeof(*out), cmp_target);
	return n;
}

/* Which data values one epoll_wait(timeout 0) reports, as a bitmask of 0x1111 * (1..7). */
static unsigned int ready(int ep)
{
	struct epoll_event evs[16];
	unsigned int mask = 0;
	int n = epoll_wait(ep, evs, 16, 0);

	if (n < 0)
		case_fail("epoll_wait(%d): %m", ep);
	for (int i = 0; i < n; i++)
		mask |= 1U << (evs[i].data.u64 / 0x1111);
	return mask;
}
#define BIT(d) (1U << ((d) / 0x1111))

static void setup(void)
{
	int ep, outer;

	make_pipe(20, 30);
	case_move_fd(dup(20), 21, 0);
	make_pipe(22, 32);
	make_pipe(33, 23);	/* C: the write end is the target */
	make_pipe(24, 34);
	make_pipe(25, 35);
	ep = epoll_create1(0);
	outer = epoll_create1(0);
	if (ep < 0 || outer < 0)
		case_die("epoll_create1: %m");
	case_move_fd(ep, INNER, 0);
	case_move_fd(outer, OUTER, 0);
	fcntl(INNER, F_SETFL, O_NONBLOCK);
	fcntl(OUTER, F_SETFD, FD_CLOEXEC);
	ctl(INNER, EPOLL_CTL_ADD, 20, EPOLLIN, 0x1111);
	ctl(INNER, EPOLL_CTL_ADD, 21, EPOLLIN | EPOLLET, 0x2222);
	ctl(INNER, EPOLL_CTL_ADD, 22, EPOLLIN | EPOLLONESHOT, 0x3333);
	ctl(INNER, EPOLL_CTL_ADD, 23, EPOLLOUT | EPOLLET, 0x4444);
	ctl(INNER, EPOLL_CTL_ADD, 24, EPOLLIN | EPOLLEXCLUSIVE, 0x5555);
	ctl(OUTER, EPOLL_CTL_ADD, INNER, EPOLLIN, 0x6666);
	if (write(30, "a", 1) != 1 || write(32, "b", 1) != 1)
		case_die("write: %m");
	/* consume every edge and fire the one-shot entry */
	if (!(ready(INNER) & BIT(0x3333)) || !(ready(OUTER) & BIT(0x6666)))
		case_die("setup: the events did not fire");
	n_inner = read_targets(INNER, inner_at_ready);
	n_outer = read_targets(OUTER, outer_at_ready);
	if (n_inner != 5 || n_outer != 1)
		case_die("setup: fdinfo shows %d and %d targets", n_inner, n_outer);
}

static void check_list(int ep, const struct target *want, int n_want)
{
	struct target now[MAX_TARGETS];
	int n = read_targets(ep, now);

	case_check(n == n_want, "fd %d: %d epoll targets, want %d", ep, n, n_want);
	for (int i = 0; i < n && i < n_want; i++)
		case_check(!memcmp(&now[i], &want[i], sizeof(now[i])),
			   "fd %d: target tfd %d events %#x data %#llx, want tfd %d events %#x data %#llx",
			   ep, now[i].tfd, now[i].events, now[i].data, want[i].tfd, want[i].events,
			   want[i].data);
}

/* Level vs edge, the disarmed one-shot entry, the empty exclusive one, the nested epoll. */
static void check_behaviour(void)
{
	unsigned int first, second;

	case_check(ready(OUTER) & BIT(0x6666), "outer epoll does not see the inner one ready");
	first = ready(INNER);
	second = ready(INNER);
	case_check(first & BIT(0x1111), "level-triggered pipe A not reported (got %#x)", first);
	case_check(second & BIT(0x1111), "level-triggered pipe A not reported again (got %#x)", second);
	case_check(!(second & (BIT(0x2222) | BIT(0x4444))),
		   "edge-triggered entries reported twice without a new edge (got %#x)", second);
	case_check(!(first & BIT(0x3333)), "fired one-shot entry reported again (got %#x)", first);
	case_check(!(first & BIT(0x5555)), "empty pipe D reported (got %#x)", first);

	if (write(30, "a", 1) != 1 || write(34, "d", 1) != 1)
		case_fail("write to pipes A, D: %m");
	first = ready(INNER);
	case_check(first & BIT(0x2222), "new edge on the dup of pipe A not reported (got %#x)", first);
	case_check(first & BIT(0x5555), "exclusive entry for pipe D not reported (got %#x)", first);
	ctl(INNER, EPOLL_CTL_MOD, 22, EPOLLIN | EPOLLONESHOT, 0x3333);
	first = ready(INNER);
	second = ready(INNER);
	case_check((first & BIT(0x3333)) && !(second & BIT(0x3333)),
		   "re-armed one-shot entry: reported %#x then %#x", first, second);
}

static __attribute__((noreturn)) void child(void)
{
	case_wait();
	if (case_sabotage("unshared")) {
		/* what creating the epoll again in each process would give */
		case_move_fd(epoll_create1(0), INNER, 0);
	}
	ctl(INNER, EPOLL_CTL_ADD, 25, EPOLLIN, 0x7777);
	case_child_exit();
}

static void sabotage(void)
{
	if (case_sabotage("data"))
		ctl(INNER, EPOLL_CTL_MOD, 20, EPOLLIN, 0x1112);
	if (case_sabotage("edge"))
		ctl(INNER, EPOLL_CTL_MOD, 21, EPOLLIN, 0x2222);
	if (case_sabotage("oneshot"))
		ctl(INNER, EPOLL_CTL_MOD, 22, EPOLLIN | EPOLLONESHOT, 0x3333);
	if (case_sabotage("target"))
		ctl(INNER, EPOLL_CTL_DEL, 24, 0, 0);
	if (case_sabotage("nested"))
		ctl(OUTER, EPOLL_CTL_DEL, INNER, 0, 0);
	if (case_sabotage("flags"))
		fcntl(INNER, F_SETFL, 0);
}

int main(int argc, char **argv)
{
	pid_t pid;
	int fl;

	case_init(argc, argv);
	setup();
	pid = case_spawn(child);
	fl = fcntl(INNER, F_GETFL);
	case_ready_wait();

	sabotage();
	case_check_fl(INNER, fl);
	case_check(fcntl(OUTER, F_GETFD) == FD_CLOEXEC, "fd %d lost FD_CLOEXEC", OUTER);
	check_list(INNER, inner_at_ready, n_inner);
	check_list(OUTER, outer_at_ready, n_outer);
	check_behaviour();

	case_check_child(pid, "child sharing the epoll");
	if (write(35, "e", 1) != 1)
		case_fail("write to pipe E: %m");
	case_check(ready(INNER) & BIT(0x7777), "the child's EPOLL_CTL_ADD did not reach our epoll");
	ctl(INNER, EPOLL_CTL_DEL, 25, 0, 0);
	case_finish();
}
