/*
 * "prctl_misc": prctl(2) settings that have no kind of their own. Process-wide: the child
 * subreaper flag, the dumpable flag and THP disabling (a flag of the mm); per thread: the
 * parent-death signal. prctl() reads and sets them only for the caller, so both directions
 * are remote calls; the PR_GET_* calls change nothing.
 *
 * A process forked from crest inherits crest's dumpable and THP flags (they are mm flags
 * that fork() copies), so the process record is always saved, defaults included. A new
 * thread, and a forked process, start with no parent-death signal, so only a set one is.
 *
 * Order matters: a credential change (commit_creds() with another euid, egid, fsuid, fsgid
 * or capability set) resets both dumpable (to fs.suid_dumpable) and every pdeathsig of the
 * process, so this kind must take effect after the credentials are restored (see
 * task/kinds.c). And a process whose parent is crest itself (the root of a tree restored
 * with -d) gets its pdeathsig when crest exits, as it would on any change of parent.
 */
#define LOG_PREFIX "task/prctl_misc: "
#include "task/task.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "infect/infect.h"
#include "prctl_misc.pb-c.h"
#include "util/log.h"
#include "util/util.h"

/* prctl(op, arg2, arg3) in thread tid; *r gets its non-negative result. */
static int remote_prctl(struct infect_ctl *ctl, pid_t tid, const char *what, long op, long arg2,
			long arg3, long *r)
{
	long args[6] = { op, arg2, arg3 };
	int ret = infect_syscall_tid(ctl, tid, SYS_prctl, args, r);

	if (ret)
		return ret;
	if (*r < 0)
		return pr_errno((int)*r, "tid %d: prctl(%s) failed", tid, what);
	return 0;
}

/* The PR_GET_* that store an int at a pointer rather than return it. */
static int remote_get_int(struct infect_ctl *ctl, pid_t tid, const char *what, long op,
			  uint32_t *val)
{
	uint64_t addr;
	int v, ret;
	long r;

	ret = infect_scratch(ctl, sizeof(v), &addr);
	if (!ret)
		ret = remote_prctl(ctl, tid, what, op, (long)addr, 0, &r);
	if (!ret)
		ret = infect_read(ctl, addr, &v, sizeof(v));
	if (!ret)
		*val = (uint32_t)v;
	return ret;
}

static int read_process(struct infect_ctl *ctl, pid_t pid, PrctlMisc *pm)
{
	long dumpable, thp;
	int ret;

	ret = remote_get_int(ctl, pid, "PR_GET_CHILD_SUBREAPER", PR_GET_CHILD_SUBREAPER,
			     &pm->child_subreaper);
	if (!ret)
		ret = remote_prctl(ctl, pid, "PR_GET_DUMPABLE", PR_GET_DUMPABLE, 0, 0, &dumpable);
	if (!ret)
		ret = remote_prctl(ctl, pid, "PR_GET_THP_DISABLE", PR_GET_THP_DISABLE, 0, 0, &thp);
	if (ret)
		return ret;
	pm->has_child_subreaper = pm->has_dumpable = pm->has_thp_disable = true;
	pm->dumpable = (uint32_t)dumpable;
	pm->thp_disable = (uint32_t)thp;
	return 0;
}

static int prctl_misc_dump(struct infect_ctl *ctl, pid_t pid, ProtobufCMessage **ret)
{
	PrctlMisc *pm = xmalloc(sizeof(*pm));
	int err;

	if (!pm)
		return -ENOMEM;
	prctl_misc__init(pm);
	err = read_process(ctl, pid, pm);
	if (err) {
		prctl_misc__free_unpacked(pm, NULL);
		return err;
	}
	*ret = &pm->base;
	return 0;
}

static int prctl_misc_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	PrctlMisc *pm;
	uint32_t sig;
	int err;

	err = remote_get_int(ctl, tid, "PR_GET_PDEATHSIG", PR_GET_PDEATHSIG, &sig);
	if (err || !sig)
		return err;
	pm = xmalloc(sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	prctl_misc__init(pm);
	pm->has_pdeathsig = true;
	pm->pdeathsig = sig;
	*ret = &pm->base;
	return 0;
}

/*
 * PR_SET_THP_DISABLE takes the disable bit in arg2 and PR_THP_DISABLE_EXCEPT_ADVISED (bit 1
 * of what PR_GET_THP_DISABLE returns, Linux 6.18) in arg3.
 */
static int restore_thp(struct infect_ctl *ctl, pid_t pid, uint32_t thp)
{
	long r;
	int ret = remote_prctl(ctl, pid, "PR_SET_THP_DISABLE", PR_SET_THP_DISABLE, thp & 1,
			       thp & ~1U, &r);

	if (ret)
		pr_err("pid %d: THP disable state %u is not restored", pid, thp);
	return ret;
}

/* Dumpable last: 0 makes /proc/PID root's, which only crest's own later reads could mind. */
static int prctl_misc_restore(struct infect_ctl *ctl, pid_t pid, const ProtobufCMessage *rec)
{
	const PrctlMisc *pm = (const PrctlMisc *)rec;
	long r;
	int ret = 0;

	if (pm->has_child_subreaper)
		ret = remote_prctl(ctl, pid, "PR_SET_CHILD_SUBREAPER", PR_SET_CHILD_SUBREAPER,
				   pm->child_subreaper, 0, &r);
	if (!ret && pm->has_thp_disable)
		ret = restore_thp(ctl, pid, pm->thp_disable);
	if (ret || !pm->has_dumpable)
		return ret;
	/* 2 (SUID_DUMP_ROOT) comes only from exec with fs.suid_dumpable=2: prctl cannot set it. */
	if (pm->dumpable > 1)
		return pr_errno(-EINVAL, "pid %d: dumpable %u (set by fs.suid_dumpable at exec) cannot be restored",
				pid, pm->dumpable);
	return remote_prctl(ctl, pid, "PR_SET_DUMPABLE", PR_SET_DUMPABLE, pm->dumpable, 0, &r);
}

static int prctl_misc_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec)
{
	const PrctlMisc *pm = (const PrctlMisc *)rec;
	long r;

	if (!pm->has_pdeathsig)
		return 0;
	return remote_prctl(ctl, tid, "PR_SET_PDEATHSIG", PR_SET_PDEATHSIG, pm->pdeathsig, 0, &r);
}

const struct task_kind task_kind_prctl_misc = {
	.name = "prctl_misc",
	.desc = &prctl_misc__descriptor,
	.dump = prctl_misc_dump,
	.dump_thread = prctl_misc_dump_thread,
	.restore_final = prctl_misc_restore,
	.restore_thread_final = prctl_misc_restore_thread,
};
