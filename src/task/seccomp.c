/*
 * "seccomp" and "seccomp_strict": the seccomp state of each thread. Filter mode keeps a chain
 * of classic BPF programs per thread (newest first, each pointing to the one before); strict
 * mode allows only read, write, _exit and sigreturn. /proc/TID/status shows the mode
 * ("Seccomp:") and the chain's length ("Seccomp_filters:"); PTRACE_SECCOMP_GET_FILTER gives
 * each program back as it was installed (index 0 the oldest), PTRACE_SECCOMP_GET_METADATA
 * its flags.
 *
 * Threads share filters: a thread inherits its creator's chain, and SECCOMP_FILTER_FLAG_TSYNC
 * gives every thread of the process the caller's. Sharing is invisible to evaluation, but a
 * later TSYNC succeeds only when every other thread's chain is part of the caller's, so it is
 * recreated where it can be: the oldest filters common to all threads of the process are
 * installed once, with TSYNC; the rest in each thread alone. Identical programs are taken for
 * shared ones (nothing tells them apart); sharing among only some threads beyond the common
 * part cannot be recreated (only a clone() hands a chain to some threads) and is not.
 *
 * Order of restore (why there are two kinds, in task/kinds.c around "creds"):
 *  1. "seccomp", filter mode, before "creds": installing a filter needs CAP_SYS_ADMIN or
 *     no_new_privs in the thread. A thread may have installed its filters while it held
 *     CAP_SYS_ADMIN and dropped it afterwards, without no_new_privs; now, still a copy of
 *     crest, it has CAP_SYS_ADMIN. And TSYNC copies the caller's no_new_privs to every
 *     thread, so no thread may have it yet: "creds" sets it afterwards, per thread.
 *     The filters cannot disturb what follows: infect seizes with PTRACE_O_SUSPEND_SECCOMP,
 *     so no remote call of the later kinds, nor the restorer's unmapping, is filtered. That
 *     needs CAP_SYS_ADMIN in crest (and crest not under seccomp), which is checked first.
 *  2. "creds".
 *  3. "seccomp_strict", last of all: strict mode forbids nearly every syscall, so it comes
 *     after everything else a thread must do, and it cannot coexist with filters.
 */
#define LOG_PREFIX "task/seccomp: "
#include "task/task.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include "infect/infect.h"
#include "seccomp.pb-c.h"
#include "ns/pidns.h"
#include "util/log.h"
#include "util/util.h"

/* include/uapi/linux/capability.h; <linux/capability.h> is not needed for one number. */
#define CAP_SYS_ADMIN_BIT	(1ULL << 21)
/* A program is at most BPF_MAXINSNS instructions (seccomp_prepare_filter()). */
#define MAX_PROG_BYTES		(BPF_MAXINSNS * sizeof(struct sock_filter))
/* struct sock_fprog at the start of the scratch area, the program after it. */
#define PROG_OFFSET		16

/* ---- reading ------------------------------------------------------------------------------ */

/* The numeric value of "Key:" in /proc/<who>/status (who: a tid or "thread-self"). */
static int status_field(const char *who, const char *key, int base, unsigned long long *val)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = strlen(key);
	char path[64];

	snprintf(path, sizeof(path), "/proc/%s/status", who);
	buf = read_file_at(AT_FDCWD, path, NULL);
	if (!buf)
		return pr_errno(-errno, "cannot read %s", path);
	for (const char *p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, key, len) && p[len] == ':') {
			*val = strtoull(p + len + 1, NULL, base);
			return 0;
		}
	}
	return -ENOENT;
}

static int thread_mode(pid_t tid, unsigned int *mode)
{
	char who[16];
	unsigned long long v;
	int ret;

	snprintf(who, sizeof(who), "%d", tid);
	ret = status_field(who, "Seccomp", 10, &v);
	if (ret == -ENOENT)
		ret = pr_errno(-ENOENT, "tid %d: /proc/%d/status has no Seccomp line", tid, tid);
	if (!ret)
		*mode = v;
	return ret;
}

/*
 * A filter that hands syscalls to a user-space supervisor (SECCOMP_RET_USER_NOTIF) needs the
 * listener descriptor it was created with, which is not restored: refuse it. A return of the
 * accumulator could be that action too.
 */
static int check_prog(pid_t tid, unsigned int idx, const struct sock_filter *prog, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (prog[i].code == (BPF_RET | BPF_A))
			return pr_errno(-EOPNOTSUPP, "tid %d: seccomp filter %u returns a computed action, which could notify a user-space listener that cannot be restored",
					tid, idx);
		if (prog[i].code == (BPF_RET | BPF_K) &&
		    (prog[i].k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF)
			return pr_errno(-EOPNOTSUPP, "tid %d: seccomp filter %u notifies a user-space listener (SECCOMP_RET_USER_NOTIF), which cannot be restored",
					tid, idx);
	}
	return 0;
}

/* The index of an equal program in rec->filters, added if there is none. */
static int intern_filter(Seccomp *rec, const void *prog, size_t len, uint64_t flags,
			 uint32_t *ret_idx)
{
	SeccompFilter *f, **grown;

	for (size_t i = 0; i < rec->n_filters; i++) {
		f = rec->filters[i];
		if (f->flags == flags && f->prog.len == len && !memcmp(f->prog.data, prog, len)) {
			*ret_idx = i;
			return 0;
		}
	}
	grown = xrealloc(rec->filters, (rec->n_filters + 1) * sizeof(*grown));
	f = xmalloc(sizeof(*f));
	if (grown)
		rec->filters = grown;
	if (!grown || !f) {
		free(f);
		return -ENOMEM;
	}
	seccomp_filter__init(f);
	f->flags = flags;
	f->prog.data = xmalloc(len);
	rec->filters[rec->n_filters] = f;
	*ret_idx = rec->n_filters++;
	if (!f->prog.data)
		return -ENOMEM;
	memcpy(f->prog.data, prog, len);
	f->prog.len = len;
	return 0;
}

static int get_filter_error(pid_t tid, unsigned int idx)
{
	int err = -errno;

	if (err == -EACCES)
		return pr_errno(err, "tid %d: cannot read seccomp filter %u: that needs CAP_SYS_ADMIN, and crest not under seccomp itself",
				tid, idx);
	return pr_errno(err, "tid %d: cannot read seccomp filter %u (PTRACE_SECCOMP_GET_FILTER)", tid, idx);
}

/*
 * Filter idx of tid, interned in rec; -ENOENT past the newest. Index 0 is the OLDEST filter:
 * get_nth_filter() (kernel/seccomp.c) counts from the root of the chain, whatever ptrace(2)
 * says about "the most recently installed".
 */
static int read_filter(Seccomp *rec, pid_t tid, unsigned int idx, uint32_t *ret_idx)
{
	struct __ptrace_seccomp_metadata md = { .filter_off = idx };
	_cleanup_free_ struct sock_filter *prog = NULL;
	long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)idx, NULL);
	int ret;

	if (n < 0 && errno == ENOENT)
		return -ENOENT;
	if (n <= 0 || n > BPF_MAXINSNS)
		return n < 0 ? get_filter_error(tid, idx) :
		       pr_errno(-EINVAL, "tid %d: seccomp filter %u has %ld instructions", tid, idx, n);
	prog = xmalloc(n * sizeof(*prog));
	if (!prog)
		return -ENOMEM;
	if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, (void *)(long)idx, prog) != n)
		return get_filter_error(tid, idx);
	if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, (void *)sizeof(md), &md) < 0)
		return pr_errno(-errno, "tid %d: cannot read the flags of seccomp filter %u", tid, idx);
	ret = check_prog(tid, idx, prog, n);
	if (!ret)
		ret = intern_filter(rec, prog, n * sizeof(*prog), md.flags & SECCOMP_FILTER_FLAG_LOG,
				    ret_idx);
	return ret;
}

/* The whole chain of tid, oldest first, as a new entry of rec->threads. */
static int read_chain(Seccomp *rec, pid_t tid)
{
	SeccompThread *th = xmalloc(sizeof(*th)), **grown;
	unsigned long long count;
	char who[16];
	uint32_t idx = 0;
	int ret;

	grown = xrealloc(rec->threads, (rec->n_threads + 1) * sizeof(*grown));
	if (grown)
		rec->threads = grown;
	if (!grown || !th) {
		free(th);
		return -ENOMEM;
	}
	seccomp_thread__init(th);
	th->tid = pidns_view(tid);	/* the image keeps the tree's tids */
	rec->threads[rec->n_threads++] = th;
	while (!(ret = read_filter(rec, tid, th->n_chain, &idx))) {
		uint32_t *chain = xrealloc(th->chain, (th->n_chain + 1) * sizeof(*chain));

		if (!chain)
			return -ENOMEM;
		chain[th->n_chain++] = idx;
		th->chain = chain;
	}
	if (ret != -ENOENT)
		return ret;
	snprintf(who, sizeof(who), "%d", tid);
	/* Seccomp_filters (Linux 5.9+) counts the chain: a filter missed would be lost. */
	if (!status_field(who, "Seccomp_filters", 10, &count) && count != th->n_chain)
		return pr_errno(-EIO, "tid %d: %llu seccomp filters in /proc but %zu could be read",
				tid, count, th->n_chain);
	return 0;
}

/* How many of the oldest filters every thread has, all threads being in filter mode. */
static uint32_t common_prefix(const Seccomp *rec)
{
	uint32_t n = rec->threads[0]->n_chain;

	for (size_t t = 1; t < rec->n_threads; t++) {
		const SeccompThread *th = rec->threads[t];
		uint32_t i = 0;

		while (i < n && i < th->n_chain && th->chain[i] == rec->threads[0]->chain[i])
			i++;
		n = i;
	}
	return n;
}

static int read_threads(Seccomp *rec, pid_t pid, bool *all_filtered)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	dir = opendir(path);
	if (!dir)
		return pr_errno(-errno, "pid %d: cannot list %s", pid, path);
	*all_filtered = true;
	while (!ret && (de = readdir(dir))) {
		pid_t tid = strtol(de->d_name, NULL, 10);
		unsigned int mode;

		if (tid <= 0)
			continue;
		ret = thread_mode(tid, &mode);
		if (!ret && mode == SECCOMP_MODE_FILTER)
			ret = read_chain(rec, tid);
		else if (!ret)
			*all_filtered = false;
	}
	closedir(dir);
	return ret;
}

/*
 * Dump, process-wide, because sharing is a relation between threads. Reads only: ptrace
 * hands copies of the programs, and -R leaves the filters as they were.
 */
static int seccomp_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	Seccomp *rec = xmalloc(sizeof(*rec));
	bool all_filtered = false;
	int err;

	if (!rec)
		return -ENOMEM;
	seccomp__init(rec);
	err = read_threads(rec, pid, &all_filtered);
	if (err || !rec->n_threads) {
		seccomp__free_unpacked(rec, NULL);
		return err;
	}
	rec->shared = all_filtered ? common_prefix(rec) : 0;
	*ret = &rec->base;
	return 0;
}

/* ---- restore ------------------------------------------------------------------------------ */

/*
 * The controller's remote calls must bypass the filters and strict mode being restored:
 * PTRACE_O_SUSPEND_SECCOMP, which infect asks for, is granted only to a tracer with
 * CAP_SYS_ADMIN that is not under seccomp itself.
 */
static int check_controller(pid_t pid, pid_t tid)
{
	unsigned long long caps = 0, mode = 0;
	int ret = status_field("thread-self", "CapEff", 16, &caps);

	if (!ret)
		ret = status_field("thread-self", "Seccomp", 10, &mode);
	if (ret)
		return pr_errno(ret, "crest: cannot read its own capabilities and seccomp mode");
	if (!(caps & CAP_SYS_ADMIN_BIT) || mode)
		return pr_errno(-EPERM, "pid %d tid %d: refusing to restore seccomp state: that needs CAP_SYS_ADMIN and crest not under seccomp, so that crest's own remote calls pass it",
				pid, tid);
	return 0;
}

/* A freshly made thread is a copy of crest, which is in no seccomp mode (checked above). */
static int check_fresh(pid_t pid, pid_t tid)
{
	unsigned int mode;
	int ret = thread_mode(tid, &mode);

	if (!ret && mode)
		ret = pr_errno(-EBUSY, "pid %d tid %d: already in seccomp mode %u before its own was restored",
			       pid, tid, mode);
	return ret;
}

/* One remote seccomp(SECCOMP_SET_MODE_FILTER) in tid, the program passed through scratch. */
static int install(struct infect_ctl *ctl, pid_t pid, pid_t tid, const SeccompFilter *f,
		   unsigned long flags)
{
	struct sock_fprog fprog = { .len = f->prog.len / sizeof(struct sock_filter) };
	long args[6] = { SECCOMP_SET_MODE_FILTER, flags }, r;
	uint64_t addr;
	int ret;

	if (!f->prog.len || f->prog.len % sizeof(struct sock_filter) || f->prog.len > MAX_PROG_BYTES)
		return pr_errno(-EINVAL, "pid %d tid %d: a seccomp program of %zu bytes in the image",
				pid, tid, f->prog.len);
	ret = infect_scratch(ctl, PROG_OFFSET + MAX_PROG_BYTES, &addr);
	if (ret)
		return ret;
	fprog.filter = (struct sock_filter *)(uintptr_t)(addr + PROG_OFFSET);
	ret = infect_write(ctl, addr, &fprog, sizeof(fprog));
	if (!ret)
		ret = infect_write(ctl, addr + PROG_OFFSET, f->prog.data, f->prog.len);
	args[2] = (long)addr;
	if (!ret)
		ret = infect_syscall_tid(ctl, tid, SYS_seccomp, args, &r);
	if (ret)
		return ret;
	/* With TSYNC, a positive result is the tid of a thread that could not be synchronised. */
	if (r > 0)
		return pr_errno(-EBUSY, "pid %d tid %d: thread %ld refused the shared seccomp filters (TSYNC)",
				pid, tid, r);
	if (r < 0)
		return pr_errno((int)r, "pid %d tid %d: cannot install a seccomp filter", pid, tid);
	return 0;
}

static int install_chain(struct infect_ctl *ctl, pid_t pid, const Seccomp *rec,
			 const SeccompThread *th, size_t from, size_t to, unsigned long flags)
{
	int ret = 0;

	for (size_t i = from; !ret && i < to; i++) {
		if (th->chain[i] >= rec->n_filters)
			return pr_errno(-EINVAL, "pid %d tid %d: seccomp filter %u is not in the image",
					pid, th->tid, th->chain[i]);
		/* The image keeps the tree's tid; the controller acts on its own view of it. */
		ret = install(ctl, pid, pidns_host(th->tid), rec->filters[th->chain[i]],
			      flags | rec->filters[th->chain[i]]->flags);
	}
	return ret;
}

/* The shared part must really be common: a damaged image would spread filters by TSYNC. */
static int check_shared(pid_t pid, const Seccomp *rec)
{
	for (size_t t = 0; t < rec->n_threads; t++) {
		const SeccompThread *th = rec->threads[t];

		if (th->n_chain < rec->shared ||
		    memcmp(th->chain, rec->threads[0]->chain, rec->shared * sizeof(*th->chain)))
			return pr_errno(-EINVAL, "pid %d tid %d: the image's shared seccomp filters are not that thread's",
					pid, th->tid);
	}
	return 0;
}

/*
 * Filters are installed oldest first, the shared ones from the first thread with TSYNC (which
 * reaches every thread of the process), then each thread's own. Without SPEC_ALLOW, as the
 * kernel cannot say whether the original had it: at worst the speculation mitigation that
 * seccomp may force is on where it was off.
 */
static int seccomp_restore(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *msg)
{
	const Seccomp *rec = (const Seccomp *)msg;
	int ret;

	if (!rec->n_threads)
		return 0;
	ret = check_controller(pid, rec->threads[0]->tid);
	if (!ret)
		ret = check_shared(pid, rec);
	for (size_t t = 0; !ret && t < rec->n_threads; t++)
		ret = check_fresh(pid, pidns_host(rec->threads[t]->tid));
	if (!ret)
		ret = install_chain(ctl, pid, rec, rec->threads[0], 0, rec->shared,
				    SECCOMP_FILTER_FLAG_TSYNC);
	for (size_t t = 0; !ret && t < rec->n_threads; t++)
		ret = install_chain(ctl, pid, rec, rec->threads[t], rec->shared,
				    rec->threads[t]->n_chain, 0);
	return ret;
}

const struct task_kind task_kind_seccomp = {
	.name = "seccomp",
	.desc = &seccomp__descriptor,
	.dump = seccomp_dump,
	.restore_final = seccomp_restore,
};

/* ---- strict mode -------------------------------------------------------------------------- */

static int strict_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	SeccompStrict *rec;
	unsigned int mode;
	int err = thread_mode(tid, &mode);

	if (err || mode != SECCOMP_MODE_STRICT)
		return err;
	rec = xmalloc(sizeof(*rec));
	if (!rec)
		return -ENOMEM;
	seccomp_strict__init(rec);
	rec->mode = mode;
	*ret = &rec->base;
	return 0;
}

/* The thread's process, for messages. */
static pid_t tgid_of(pid_t tid)
{
	char who[16];
	unsigned long long tgid;

	snprintf(who, sizeof(who), "%d", tid);
	return status_field(who, "Tgid", 10, &tgid) ? 0 : (pid_t)tgid;
}

static int strict_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *msg)
{
	const SeccompStrict *rec = (const SeccompStrict *)msg;
	long args[6] = { PR_SET_SECCOMP, SECCOMP_MODE_STRICT }, r;
	pid_t pid = tgid_of(tid);
	int ret;

	if (rec->mode != SECCOMP_MODE_STRICT)
		return pr_errno(-EINVAL, "pid %d tid %d: unknown seccomp mode %u in the image", pid,
				tid, rec->mode);
	ret = check_controller(pid, tid);
	if (!ret)
		ret = check_fresh(pid, tid);
	if (!ret)
		ret = infect_syscall_tid(ctl, tid, SYS_prctl, args, &r);
	if (!ret && r < 0)
		ret = pr_errno((int)r, "pid %d tid %d: cannot enter seccomp strict mode", pid, tid);
	return ret;
}

const struct task_kind task_kind_seccomp_strict = {
	.name = "seccomp_strict",
	.desc = &seccomp_strict__descriptor,
	.dump_thread = strict_dump_thread,
	.restore_thread_final = strict_restore_thread,
};
