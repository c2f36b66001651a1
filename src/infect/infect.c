/*
 * infect: seizing threads with ptrace, and running syscalls inside a stopped target.
 *
 * A remote syscall points the thread's registers at a `syscall` instruction of its own vDSO
 * and single-steps over it, so no byte of the target is written. Around it, every signal
 * but SIGTRAP is blocked, so that nothing is delivered while the thread wears our registers,
 * and its own registers and mask are put back afterwards. Signals that reach a thread while
 * we hold it stay pending, with their siginfo, and are delivered after release.
 */
#define LOG_PREFIX "infect: "

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "infect/infect.h"
#include "arch/arch.h"
#include "util/log.h"
#include "util/util.h"

/*
 * TRACESYSGOOD keeps syscall-stops apart from SIGTRAPs. No EXITKILL: if crest dies, the
 * kernel detaches and the target runs on.
 */
#define SEIZE_OPTIONS		PTRACE_O_TRACESYSGOOD
/* Only non-blocking syscalls are injected; one that takes this long means a lost target. */
#define REMOTE_TIMEOUT_MS	10000
/* How long infect_kill() waits for killed threads to exit (SIGKILL is quick). */
#define KILL_REAP_MS		2000
/* The vDSO is two pages today; refuse to read anything absurd. */
#define VDSO_MAX_SIZE		(1 << 20)

#define SIGBIT(sig)		(1ULL << ((sig) - 1))

struct infect_ctl {
	pid_t pid;			/* the process the syscalls run in */
	pid_t tid;			/* the thread infect_syscall() uses */
	uint64_t syscall_ip;		/* a `syscall` instruction in the target's vDSO */
	uint64_t scratch;		/* scratch area in the target, 0 until infect_scratch() */
	size_t scratch_size;
	int mem_fd;			/* /proc/PID/mem, opened on first fallback use */
	struct arch_regs *saved;	/* tid's registers, put back after every call and at close */
	struct arch_regs *other;	/* another thread's registers during infect_syscall_tid() */
	struct arch_regs *work;		/* the registers a remote syscall runs with */
	uint64_t regs_buf[];		/* storage of the three above */
};

static uint64_t deadline_after(int ms)
{
	return now_ns() + (uint64_t)MAX(ms, 0) * 1000000ULL;
}

/*
 * A signalfd for SIGCHLD, which the kernel sends the tracer at every ptrace-stop of a
 * tracee (and at every exit of a child): it lets a wait sleep until something happened
 * instead of polling. Made once; SIGCHLD must be blocked while it is read.
 */
static int chld_signalfd(const sigset_t *chld)
{
	static int fd = -2;

	if (fd == -2) {
		fd = signalfd(-1, chld, SFD_CLOEXEC | SFD_NONBLOCK);
		if (fd < 0)
			pr_debug("signalfd(SIGCHLD) failed (%s): waits poll", strerror(errno));
	}
	return fd;
}

/* Sleeps until a SIGCHLD arrives or up to left_ns (at most 50 ms: a re-check costs little). */
static void sleep_for_chld(int sfd, uint64_t left_ns)
{
	struct signalfd_siginfo si;
	uint64_t ns = MIN(left_ns, 50000000ULL);
	struct timespec ts = { ns / 1000000000ULL, ns % 1000000000ULL };
	struct pollfd pfd = { .fd = sfd, .events = POLLIN };

	if (sfd < 0) {
		ts.tv_nsec = MIN(ts.tv_nsec, 50000L);
		nanosleep(&ts, NULL);
		return;
	}
	if (ppoll(&pfd, 1, &ts, NULL) > 0)
		while (read(sfd, &si, sizeof(si)) == sizeof(si))
			;
}

/*
 * Waits for the next wait status of tid (__WALL: it may be a thread, or another process's
 * child). waitpid() has no timeout: with SIGCHLD blocked, check, then sleep on the
 * signalfd until the next SIGCHLD, and check again. (Polling with sched_yield() cost a
 * busy core and, on a loaded machine, many milliseconds a remote syscall.)
 * Returns 0 with *status, -ETIMEDOUT once deadline (now_ns() time) has passed, or -errno.
 */
static int wait_status(pid_t tid, uint64_t deadline, int *status)
{
	sigset_t chld, old;
	int sfd, ret;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, &old);
	sfd = chld_signalfd(&chld);
	for (;;) {
		pid_t r = waitpid(tid, status, __WALL | WNOHANG);
		uint64_t now;

		if (r == tid) {
			ret = 0;
			break;
		}
		if (r < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		now = now_ns();
		if (now >= deadline) {
			ret = -ETIMEDOUT;
			break;
		}
		sleep_for_chld(sfd, deadline - now);
	}
	/* A SIGCHLD still pending is discarded here (its default action is to ignore it). */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int get_sigmask(pid_t tid, uint64_t *mask)
{
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask)) {
		int ret = -errno;

		pr_perror("tid %d: cannot read the signal mask", tid);
		return ret;
	}
	return 0;
}

/*
 * PTRACE_GETSIGMASK returns the saved mask of a thread stopped in sigsuspend(), ppoll() ...
 * (TIF_RESTORE_SIGMASK), and SETSIGMASK drops that pending restore; so writing back what GET
 * read leaves the thread with its real mask, and the interrupted syscall, when restarted,
 * installs its temporary one again (ptrace "take into account saved_sigmask", 2019; the
 * sigsuspend case of tests/unit/test_infect.c checks it).
 */
static int set_sigmask(pid_t tid, uint64_t mask)
{
	if (ptrace(PTRACE_SETSIGMASK, tid, (void *)sizeof(mask), &mask)) {
		int ret = -errno;

		pr_perror("tid %d: cannot write the signal mask", tid);
		return ret;
	}
	return 0;
}

/* The state letter of /proc/TID/stat (R, S, D, T, t, Z ...). */
static int thread_state(pid_t tid, char *state)
{
	char path[64], buf[512];
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	/* comm may hold spaces and parentheses: the state follows the last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	*state = p[2];
	return 0;
}

/* Numeric fields of /proc/TID/status ("Tgid", "PPid", "TracerPid"): vals[i] for names[i]. */
static int status_fields(pid_t tid, const char *const *names, long *vals, int n)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	const char *p;
	int found = 0, i;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return -errno;
	for (p = buf; p && found < n; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		for (i = 0; i < n; i++) {
			size_t len = strlen(names[i]);

			if (!strncmp(p, names[i], len) && p[len] == ':') {
				vals[i] = strtol(p + len + 1, NULL, 10);
				found++;
			}
		}
	}
	return found == n ? 0 : -ENOENT;
}

bool infect_traced_by_us(pid_t tid)
{
	long tracer;

	return !status_fields(tid, (const char *const[]){ "TracerPid" }, &tracer, 1) &&
	       tracer == getpid();
}

/*
 * Threads seized but never stopped: infect_seize() timed out after PTRACE_INTERRUPT.
 * PTRACE_DETACH works only from a ptrace-stop, so each stays traced until it traps (a vfork
 * parent, once its child execs or exits); we detach it as soon as we see it stopped, and
 * the kernel detaches the rest, cancelling their pending trap, when crest exits
 * (exit_ptrace()). A tracee belongs to the tracer thread, so this table is process-wide by
 * nature.
 */
static pid_t orphans[64];
static unsigned int nr_orphans;

static void orphan_add(pid_t tid)
{
	if (nr_orphans < ARRAY_SIZE(orphans))
		orphans[nr_orphans++] = tid;
	else
		pr_warn("tid %d: too many unstopped threads to track; it is detached when crest exits",
			tid);
}

static int orphan_find(pid_t tid)
{
	unsigned int i;

	for (i = 0; i < nr_orphans; i++)
		if (orphans[i] == tid)
			return i;
	return -1;
}

/* Detaches orphan i if it has stopped (or forgets it if it is gone); -EAGAIN if it runs. */
static int orphan_try_detach(unsigned int i)
{
	pid_t tid = orphans[i];
	int status, sig = 0;
	pid_t r;

	r = waitpid(tid, &status, __WALL | WNOHANG);
	if (r == 0)
		return -EAGAIN;
	if (r == tid && WIFSTOPPED(status)) {
		/* A signal-delivery-stop: the signal was never ours to keep, let it through. */
		if (!(status >> 16))
			sig = WSTOPSIG(status);
		if (ptrace(PTRACE_DETACH, tid, NULL, (void *)(long)sig))
			pr_perror("tid %d: cannot detach after its late stop", tid);
		else
			pr_info("tid %d: stopped at last, detached", tid);
	}
	orphans[i] = orphans[--nr_orphans];
	return 0;
}

static void reap_orphans(void)
{
	unsigned int i;

	for (i = nr_orphans; i-- > 0;)
		orphan_try_detach(i);
}

/*
 * A thread in uninterruptible sleep (a vfork parent waiting for its child, a stuck NFS read)
 * cannot be interrupted, and once seized it could not be detached until it stops. So wait,
 * up to the deadline, for it to leave D state before seizing: on timeout it is untouched.
 * A zombie cannot be seized at all.
 */
static int wait_seizable(pid_t tid, uint64_t deadline)
{
	struct timespec ts = { 0, 200000 };
	char state;
	int ret;

	for (;;) {
		ret = thread_state(tid, &state);
		if (ret == -ENOENT || (!ret && (state == 'Z' || state == 'X')))
			return -ESRCH;
		if (ret)
			return pr_errno(ret, "tid %d: cannot read /proc/%d/stat", tid, tid);
		if (state != 'D')
			return 0;
		if (now_ns() >= deadline) {
			pr_err("tid %d: stays in uninterruptible sleep (D state, e.g. a vfork parent); not seized",
			       tid);
			return -ETIMEDOUT;
		}
		nanosleep(&ts, NULL);
	}
}

/*
 * PTRACE_SEIZE, asking for PTRACE_O_SUSPEND_SECCOMP too, so that the target's seccomp filter
 * neither refuses our remote syscalls nor kills the target for them. The kernel grants it
 * only to a tracer with CAP_SYS_ADMIN that is not under seccomp itself (EPERM otherwise), so
 * retry without it.
 */
static int seize_attach(pid_t tid)
{
	long tracer;
	int err;

	if (!ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)(SEIZE_OPTIONS | PTRACE_O_SUSPEND_SECCOMP)))
		return 0;
	if ((errno == EPERM || errno == EINVAL) &&
	    !ptrace(PTRACE_SEIZE, tid, NULL, (void *)(long)SEIZE_OPTIONS)) {
		long mode = 0;

		pr_debug("tid %d: seized without suspending seccomp", tid);
		/* Its filter (or strict mode) would judge our remote calls: it could kill it. */
		if (!status_fields(tid, (const char *const[]){ "Seccomp" }, &mode, 1) && mode) {
			ptrace(PTRACE_DETACH, tid, NULL, NULL);
			pr_err("tid %d: runs under seccomp, which only a crest with CAP_SYS_ADMIN can suspend for its remote calls",
			       tid);
			return -EPERM;
		}
		return 0;
	}
	err = errno;
	if (err == ESRCH)
		return -ESRCH;
	if (err == EPERM && !status_fields(tid, (const char *const[]){ "TracerPid" }, &tracer, 1) &&
	    tracer) {
		pr_err("tid %d: already traced by pid %ld, so it cannot be frozen", tid, tracer);
		return -EBUSY;
	}
	errno = err;
	pr_perror("tid %d: cannot seize", tid);
	return -err;
}

/*
 * Resumes tid from a stop so that it traps again at once (PTRACE_INTERRUPT, reported as
 * PTRACE_EVENT_STOP), keeping the signal of a signal-delivery-stop: when the tracer resumes
 * such a stop with a signal the thread now blocks, ptrace_signal() puts it back in the
 * queue it came from, siginfo untouched, instead of delivering it. So add sig to the mask
 * (*mask: the thread's own mask; *requeued: the signals added so far, to be removed again
 * once the thread is stopped). SIGSTOP cannot be blocked: it is delivered, and the group
 * stop it starts is kept after release, as it would have been.
 */
static int resume_keeping(pid_t tid, int sig, uint64_t *mask, uint64_t *requeued)
{
	int ret;

	if (sig && sig != SIGSTOP) {
		if (!*requeued) {
			ret = get_sigmask(tid, mask);
			if (ret)
				return ret;
		}
		*requeued |= SIGBIT(sig);
		ret = set_sigmask(tid, *mask | *requeued);
		if (ret)
			return ret;
		pr_debug("tid %d: signal %d came before the stop; it stays pending", tid, sig);
	}
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL) ||
	    ptrace(PTRACE_CONT, tid, NULL, (void *)(long)sig)) {
		ret = -errno;
		pr_perror("tid %d: cannot resume it to its stop", tid);
		return ret;
	}
	return 0;
}

/*
 * Waits for tid's PTRACE_EVENT_STOP: the trap PTRACE_INTERRUPT asked for, or a group stop (a
 * SIGSTOPped thread reports that way once seized). A signal the thread dequeued before the
 * trap shows up first as a signal-delivery-stop; it must neither be lost nor be delivered
 * now (a handler frame built while we read the thread), so it is requeued and we wait on.
 */
static int wait_trap_stop(pid_t tid, uint64_t deadline)
{
	uint64_t mask = 0, requeued = 0;
	int status, ret;

	for (;;) {
		ret = wait_status(tid, deadline, &status);
		if (ret)
			return ret;
		if (!WIFSTOPPED(status))
			return -ESRCH;	/* exited, or killed by SIGKILL */
		if (status >> 16 == PTRACE_EVENT_STOP)
			break;
		/* Any other event stop carries no signal of the thread's. */
		ret = resume_keeping(tid, status >> 16 ? 0 : WSTOPSIG(status), &mask, &requeued);
		if (ret)
			return ret;
	}
	return requeued ? set_sigmask(tid, mask) : 0;
}

int infect_seize(pid_t tid, int timeout_ms)
{
	uint64_t deadline = deadline_after(timeout_ms);
	int ret;

	reap_orphans();
	ret = wait_seizable(tid, deadline);
	if (ret)
		return ret;
	ret = seize_attach(tid);
	if (ret)
		return ret;
	/* Fails only if the thread died in between: a dead thread needs no detach. */
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		ret = -errno;
		pr_perror("tid %d: cannot interrupt", tid);
		return ret;
	}
	ret = wait_trap_stop(tid, deadline);
	if (ret == -ETIMEDOUT) {
		pr_err("tid %d: did not stop within %d ms; it stays traced until it stops or crest exits",
		       tid, timeout_ms);
		orphan_add(tid);
	} else if (ret && ret != -ESRCH) {
		pr_errno(ret, "tid %d: cannot wait for its stop", tid);
		if (ptrace(PTRACE_DETACH, tid, NULL, NULL))
			orphan_add(tid);
	}
	return ret;
}

int infect_interrupt(pid_t tid, int timeout_ms)
{
	int ret;

	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		ret = -errno;
		pr_perror("tid %d: cannot interrupt", tid);
		return ret;
	}
	ret = wait_trap_stop(tid, deadline_after(timeout_ms));
	if (ret == -ETIMEDOUT)
		pr_err("tid %d: did not stop within %d ms", tid, timeout_ms);
	else if (ret)
		pr_errno(ret, "tid %d: cannot wait for its stop", tid);
	return ret;
}

int infect_release(pid_t tid)
{
	int i = orphan_find(tid);

	if (i >= 0) {
		if (!orphan_try_detach(i))
			return 0;
		pr_info("tid %d: has not stopped yet; it is detached when it does or when crest exits",
			tid);
		return -EAGAIN;
	}
	/* Signals that came while we held it are still pending: it gets them now. */
	if (ptrace(PTRACE_DETACH, tid, NULL, NULL)) {
		int ret = -errno;

		pr_perror("tid %d: cannot detach", tid);
		return ret;
	}
	return 0;
}

/*
 * A killed tracee stays a zombie until its tracer waits for it, and its process cannot be
 * reaped by its parent before every thread is: so wait for each thread of tgid (the list was
 * taken before the kill). Not for the leader of our own child, whose exit status belongs to
 * our caller's waitpid(). SIGKILL ends anything quickly, so a short deadline does.
 */
static void reap_killed(pid_t tgid, const pid_t *tids, size_t nr, bool our_child)
{
	uint64_t deadline = deadline_after(KILL_REAP_MS);
	size_t i;
	int status;

	for (i = 0; i < nr; i++)
		if (tids[i] != tgid)
			wait_status(tids[i], deadline, &status);
	if (!our_child)
		wait_status(tgid, deadline, &status);
}

/* The threads of process tgid, from /proc/TGID/task. */
static size_t list_threads(pid_t tgid, pid_t *tids, size_t max)
{
	char path[64];
	struct dirent *de;
	size_t nr = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", tgid);
	d = opendir(path);
	if (!d)
		return 0;
	while (nr < max && (de = readdir(d)))
		if (atoi(de->d_name) > 0)
			tids[nr++] = atoi(de->d_name);
	closedir(d);
	return nr;
}

int infect_kill(pid_t tid)
{
	static const char *const names[] = { "TracerPid", "Tgid", "PPid" };
	long st[ARRAY_SIZE(names)];	/* tracer, tgid, ppid */
	pid_t tids[256];
	size_t nr;
	int i;

	i = orphan_find(tid);
	if (i >= 0)
		orphans[i] = orphans[--nr_orphans];
	/*
	 * Only a thread we trace: once one thread's call has killed the process, the others'
	 * numbers may already belong to someone else. Read all before the kill.
	 */
	if (status_fields(tid, names, st, ARRAY_SIZE(names)) || st[0] != gettid()) {
		pr_debug("tid %d: gone, or not traced by us: nothing to kill", tid);
		return -ESRCH;
	}
	nr = list_threads(st[1], tids, ARRAY_SIZE(tids));
	if (kill((pid_t)st[1], SIGKILL)) {
		int ret = -errno;

		return pr_errno(ret, "pid %ld: cannot kill", st[1]);
	}
	/* SIGKILL takes a thread out of its ptrace-stop, so this mostly finds it gone. */
	ptrace(PTRACE_DETACH, tid, NULL, NULL);
	reap_killed(st[1], tids, nr, st[2] == getpid());
	return 0;
}

/* process_vm_readv/writev stop short at a fault (PROT_NONE, unreadable): bytes or -errno. */
static ssize_t vm_rw(pid_t pid, uint64_t addr, void *buf, size_t len, bool write)
{
	struct iovec local = { buf, len };
	struct iovec remote = { (void *)(uintptr_t)addr, len };

	if (write)
		return process_vm_writev(pid, &local, 1, &remote, 1, 0);
	return process_vm_readv(pid, &local, 1, &remote, 1, 0);
}

/* /proc/PID/mem goes through FOLL_FORCE: it reaches PROT_NONE and read-only pages too. */
static int mem_rw(struct infect_ctl *ctl, uint64_t addr, char *buf, size_t len, bool write)
{
	char path[64];

	if (ctl->mem_fd < 0) {
		snprintf(path, sizeof(path), "/proc/%d/mem", ctl->pid);
		ctl->mem_fd = open(path, O_RDWR | O_CLOEXEC);
		if (ctl->mem_fd < 0)
			return -errno;
	}
	if (!write)
		return pread_all(ctl->mem_fd, buf, len, (off_t)addr);
	while (len) {
		ssize_t n = pwrite(ctl->mem_fd, buf, len, (off_t)addr);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		addr += n;
		len -= n;
	}
	return 0;
}

static int access_mem(struct infect_ctl *ctl, uint64_t addr, void *buf, size_t len, bool write)
{
	ssize_t n = vm_rw(ctl->pid, addr, buf, len, write);
	int ret;

	if (n == (ssize_t)len)
		return 0;
	if (n < 0)
		n = 0;
	ret = mem_rw(ctl, addr + n, (char *)buf + n, len - n, write);
	if (ret)
		pr_errno(ret, "pid %d: cannot %s %zu bytes at %#" PRIx64, ctl->pid,
			 write ? "write" : "read", len, addr);
	return ret;
}

int infect_read(struct infect_ctl *ctl, uint64_t addr, void *buf, size_t len)
{
	return access_mem(ctl, addr, buf, len, false);
}

int infect_write(struct infect_ctl *ctl, uint64_t addr, const void *buf, size_t len)
{
	return access_mem(ctl, addr, (void *)buf, len, true);
}

/*
 * A thread stopped inside an rseq critical section is sent to its abort_ip by the kernel as
 * it returns to user space (rseq_ip_fixup(); the stop itself scheduled it out). A remote
 * syscall returns to user space in the vDSO, outside the section, so the kernel clears
 * rseq_cs instead, and the thread would later resume inside its section with no abort. So
 * apply the abort to its saved registers now, as the kernel would have (same signature
 * check before abort_ip).
 */
static int rseq_abort_fixup(struct infect_ctl *ctl, pid_t tid, struct arch_regs *regs)
{
	struct __ptrace_rseq_configuration conf;
	struct { uint32_t version, flags; uint64_t start_ip, post_commit_offset, abort_ip; } cs;
	uint64_t cs_ptr, ip = arch_regs_ip(regs);
	uint32_t sig;
	int ret;

	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, (void *)sizeof(conf), &conf) < 0) {
		ret = -errno;
		if (ret == -EIO)
			return 0;	/* before 5.13: no way to know, and no rseq user yet */
		return pr_errno(ret, "tid %d: cannot read its rseq registration", tid);
	}
	if (!conf.rseq_abi_pointer)
		return 0;
	/* struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs. */
	ret = infect_read(ctl, conf.rseq_abi_pointer + 8, &cs_ptr, sizeof(cs_ptr));
	if (ret || !cs_ptr)
		return ret;
	ret = infect_read(ctl, cs_ptr, &cs, sizeof(cs));
	if (ret || ip < cs.start_ip || ip - cs.start_ip >= cs.post_commit_offset)
		return ret;
	ret = infect_read(ctl, cs.abort_ip - sizeof(sig), &sig, sizeof(sig));
	if (ret)
		return ret;
	if (sig != conf.signature) {
		pr_warn("tid %d: rseq abort handler at %#" PRIx64 " has a bad signature", tid,
			(uint64_t)cs.abort_ip);
		return 0;
	}
	pr_debug("tid %d: stopped in an rseq critical section at %#" PRIx64 ", aborted to %#" PRIx64,
		 tid, ip, (uint64_t)cs.abort_ip);
	arch_regs_set_ip(regs, cs.abort_ip);
	return 0;
}

/* Finds the [vdso] mapping in /proc/PID/maps. */
static int find_vdso(pid_t pid, uint64_t *start, uint64_t *end)
{
	_cleanup_free_ char *maps = NULL;
	char path[64], *line, *next;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	maps = read_file_at(AT_FDCWD, path, NULL);
	if (!maps) {
		int ret = -errno;

		pr_perror("pid %d: cannot read %s", pid, path);
		return ret;
	}
	for (line = maps; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		len = strlen(line);
		if (len < 6 || strcmp(line + len - 6, "[vdso]"))
			continue;
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, start, end) == 2 && *end > *start &&
		    *end - *start <= VDSO_MAX_SIZE)
			return 0;
	}
	pr_err("pid %d: has no [vdso] mapping, whose syscall instruction remote syscalls need", pid);
	return -ENOENT;
}

static int find_syscall_insn(struct infect_ctl *ctl)
{
	_cleanup_free_ void *text = NULL;
	uint64_t start, end;
	long off;
	int ret;

	ret = find_vdso(ctl->pid, &start, &end);
	if (ret)
		return ret;
	text = xmalloc(end - start);
	if (!text)
		return -ENOMEM;
	ret = infect_read(ctl, start, text, end - start);
	if (ret)
		return ret;
	off = arch_find_syscall_insn(text, end - start);
	if (off < 0) {
		pr_err("pid %d: no syscall instruction in the vDSO at %#" PRIx64, ctl->pid, start);
		return -ENOENT;
	}
	ctl->syscall_ip = start + off;
	return 0;
}

int infect_ctl_open(pid_t pid, pid_t tid, struct infect_ctl **ret)
{
	size_t rsize = ALIGN_UP(arch_regs_size(), sizeof(uint64_t));
	struct infect_ctl *ctl;
	int err;

	ctl = xzalloc(sizeof(*ctl) + 3 * rsize);
	if (!ctl)
		return -ENOMEM;
	ctl->pid = pid;
	ctl->tid = tid;
	ctl->mem_fd = -1;
	ctl->saved = (struct arch_regs *)ctl->regs_buf;
	ctl->other = (struct arch_regs *)((char *)ctl->regs_buf + rsize);
	ctl->work = (struct arch_regs *)((char *)ctl->regs_buf + 2 * rsize);
	err = arch_regs_get(tid, ctl->saved);
	if (!err)
		err = rseq_abort_fixup(ctl, tid, ctl->saved);
	if (!err)
		err = find_syscall_insn(ctl);
	if (err) {
		free(ctl);
		return err;
	}
	*ret = ctl;
	return 0;
}

/*
 * Our SIGTRAP stop came before the syscall ran: the thread had a SIGTRAP pending (an int3
 * hit just as it was seized, or one sent to it). Blocking SIGTRAP during remote syscalls is
 * no way out: the kernel resets the handler of a blocked signal it forces
 * (force_sig_info_to_task()), and our single-step trap is forced. So put the SIGTRAP back
 * in its queue and refuse, rather than consume it.
 */
static int refuse_pending_trap(pid_t tid, uint64_t deadline)
{
	uint64_t mask = 0, requeued = 0;
	int ret;

	ret = resume_keeping(tid, SIGTRAP, &mask, &requeued);
	if (!ret)
		ret = wait_trap_stop(tid, deadline);
	if (ret)
		return ret;
	pr_err("tid %d: has a SIGTRAP pending, which a remote syscall would consume", tid);
	return -EAGAIN;
}

/*
 * Single-steps tid over the `syscall` its registers point at, leaving the registers after it
 * in regs. The step ends in a SIGTRAP signal-delivery-stop (user_single_step_report() on
 * syscall exit); that stop has dequeued the SIGTRAP, and our next resume passes no signal,
 * so none is left pending. On the way: a group stop or interrupt trap (step on); SIGSTOP,
 * the one signal we cannot block (deliver it: a group stop, kept after release).
 */
static int step_syscall(struct infect_ctl *ctl, pid_t tid, struct arch_regs *regs,
			uint64_t deadline)
{
	int status, sig = 0, ret;

	for (;;) {
		if (ptrace(PTRACE_SINGLESTEP, tid, NULL, (void *)(long)sig)) {
			ret = -errno;
			return pr_errno(ret, "tid %d: cannot single-step", tid);
		}
		ret = wait_status(tid, deadline, &status);
		if (ret)
			return pr_errno(ret, "tid %d: remote syscall did not complete", tid);
		if (!WIFSTOPPED(status)) {
			pr_err("tid %d: died during a remote syscall", tid);
			return -ESRCH;
		}
		sig = status >> 16 ? 0 : WSTOPSIG(status);
		if (sig == SIGTRAP)
			break;
		if (sig && sig != SIGSTOP) {
			/* Only a fault in our own code gets here: drop it (next resume passes 0). */
			pr_err("tid %d: remote syscall raised signal %d", tid, sig);
			return -EFAULT;
		}
	}
	ret = arch_regs_get(tid, regs);
	if (ret)
		return ret;
	if (arch_regs_ip(regs) != ctl->syscall_ip)
		return 0;
	return refuse_pending_trap(tid, deadline);
}

/*
 * Runs syscall nr in tid, whose real registers are orig, and puts orig and the thread's mask
 * back afterwards, even on failure. Every signal but SIGTRAP (see refuse_pending_trap()) is
 * blocked meanwhile, so nothing is delivered while the thread wears our registers.
 */
static int remote_call(struct infect_ctl *ctl, pid_t tid, const struct arch_regs *orig, long nr,
		       const long args[6], long *ret)
{
	uint64_t deadline = deadline_after(REMOTE_TIMEOUT_MS);
	uint64_t mask;
	int err, err2;

	err = get_sigmask(tid, &mask);
	if (!err)
		err = set_sigmask(tid, ~SIGBIT(SIGTRAP));
	if (err)
		return err;
	memcpy(ctl->work, orig, arch_regs_size());
	arch_regs_prepare_syscall(ctl->work, ctl->syscall_ip, nr, args);
	err = arch_regs_set(tid, ctl->work);
	if (!err)
		err = step_syscall(ctl, tid, ctl->work, deadline);
	if (!err)
		*ret = arch_regs_syscall_result(ctl->work);
	err2 = arch_regs_set(tid, orig);
	if (!err2)
		err2 = set_sigmask(tid, mask);
	return err ? err : err2;
}

int infect_syscall(struct infect_ctl *ctl, long nr, const long args[6], long *ret)
{
	return remote_call(ctl, ctl->tid, ctl->saved, nr, args, ret);
}

int infect_syscall_tid(struct infect_ctl *ctl, pid_t tid, long nr, const long args[6], long *ret)
{
	int err;

	if (tid == ctl->tid)
		return infect_syscall(ctl, nr, args, ret);
	err = arch_regs_get(tid, ctl->other);
	if (!err)
		err = rseq_abort_fixup(ctl, tid, ctl->other);
	if (!err)
		err = remote_call(ctl, tid, ctl->other, nr, args, ret);
	return err;
}

static int unmap_scratch(struct infect_ctl *ctl)
{
	long args[6] = { (long)ctl->scratch, (long)ctl->scratch_size }, r;
	int ret;

	ret = infect_syscall(ctl, SYS_munmap, args, &r);
	if (!ret && r) {
		pr_err("pid %d: cannot unmap the scratch area at %#" PRIx64 ": %s", ctl->pid,
		       ctl->scratch, strerror(-r));
		ret = (int)r;
	}
	ctl->scratch = 0;
	ctl->scratch_size = 0;
	return ret;
}

int infect_scratch(struct infect_ctl *ctl, size_t size, uint64_t *ret_addr)
{
	size_t len = ALIGN_UP(MAX(size, (size_t)1), (size_t)sysconf(_SC_PAGESIZE));
	long args[6] = { 0, (long)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0 };
	long addr;
	int ret;

	if (ctl->scratch && ctl->scratch_size >= len) {
		*ret_addr = ctl->scratch;
		return 0;
	}
	/* A bigger one is wanted: the contents of the old one are not promised to last. */
	if (ctl->scratch) {
		ret = unmap_scratch(ctl);
		if (ret)
			return ret;
	}
	ret = infect_syscall(ctl, SYS_mmap, args, &addr);
	if (ret)
		return ret;
	if ((unsigned long)addr >= -4095UL) {
		pr_err("pid %d: cannot map a %zu-byte scratch area: %s", ctl->pid, len,
		       strerror((int)-addr));
		return (int)addr;
	}
	ctl->scratch = addr;
	ctl->scratch_size = len;
	*ret_addr = ctl->scratch;
	return 0;
}

int infect_ctl_close(struct infect_ctl *ctl)
{
	int ret = 0, err;

	if (!ctl)
		return 0;
	if (ctl->scratch)
		ret = unmap_scratch(ctl);
	/* As at open, with an rseq abort applied if one was due (see rseq_abort_fixup()). */
	err = arch_regs_set(ctl->tid, ctl->saved);
	if (!ret)
		ret = err;
	safe_close(ctl->mem_fd);
	free(ctl);
	return ret;
}
