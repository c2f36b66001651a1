/*
 * "creds": the credentials of each thread: user and group ids (real, effective, saved, fs),
 * supplementary groups, the five capability sets, securebits and no_new_privs. struct cred
 * hangs off each task, not off the process: a raw setresuid() or capset() changes one thread
 * only (glibc's setxid broadcast is what makes them look process-wide), so this is a per-thread
 * kind, read from /proc/TID/status and set by remote calls in each thread.
 *
 * Restored by the controller, last among the kinds but the strict seccomp mode: once a thread
 * has its ids and capabilities, anything after it would have to work with them. Every thread
 * starts as a copy of crest, so what a thread may get is what crest has: crest never restores a
 * credential it does not hold itself (checked first, with one line naming it), and the kernel
 * checks again on every call.
 */
#define LOG_PREFIX "task/creds: "
#include "task/task.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "creds.pb-c.h"
#include "infect/infect.h"
#include "util/log.h"
#include "util/util.h"

/* setgroups() takes at most NGROUPS_MAX (65536) groups. */
#define MAX_GROUPS	65536
#define CAP_BIT(c)	(1ULL << (c))

enum { ID_REAL, ID_EFF, ID_SAVED, ID_FS, NR_IDS };
enum { CAPS_INH, CAPS_PRM, CAPS_EFF, CAPS_BND, CAPS_AMB, NR_CAPSETS };

/* The credentials of one thread as they are now: the image's, a restored thread's, crest's. */
struct cred_set {
	pid_t tgid;			/* its process, for messages */
	uint32_t uid[NR_IDS];
	uint32_t gid[NR_IDS];
	uint32_t *groups;
	size_t nr_groups;
	uint64_t caps[NR_CAPSETS];
	uint32_t securebits;
	bool nnp;
	unsigned int seccomp;		/* "Seccomp:" mode, 0 without CONFIG_SECCOMP */
};

/* Which thread a message is about. */
struct who {
	pid_t pid;
	pid_t tid;
};

static const char *const id_names[NR_IDS] = { "real", "effective", "saved", "filesystem" };
static const char *const capset_names[NR_CAPSETS] = {
	"inheritable", "permitted", "effective", "bounding", "ambient",
};
static const char *const status_caps[NR_CAPSETS] = { "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb" };

/* include/uapi/linux/capability.h, for messages; a newer capability is shown by number. */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
};

static const char *cap_name(unsigned int cap, char *buf, size_t len)
{
	if (cap < ARRAY_SIZE(cap_names))
		return cap_names[cap];
	snprintf(buf, len, "capability %u", cap);
	return buf;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* The value of "Key:" in a /proc/.../status text, or NULL. */
static const char *status_value(const char *buf, const char *key)
{
	size_t len = strlen(key);

	for (const char *p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, key, len) && p[len] == ':')
			return p + len + 1;
	}
	return NULL;
}

static int parse_ids(const char *buf, const char *key, uint32_t ids[NR_IDS])
{
	const char *p = status_value(buf, key);
	char *end;

	for (int i = 0; p && i < NR_IDS; i++, p = end) {
		ids[i] = strtoul(p, &end, 10);
		if (end == p)
			return -EINVAL;
	}
	return p ? 0 : -EINVAL;
}

static int parse_groups(const char *buf, struct cred_set *c)
{
	const char *p = status_value(buf, "Groups");
	char *end;

	if (!p)
		return -EINVAL;
	c->groups = xmalloc(MAX_GROUPS * sizeof(*c->groups));
	if (!c->groups)
		return -ENOMEM;
	for (;;) {
		unsigned long g = strtoul(p, &end, 10);

		if (end == p || c->nr_groups == MAX_GROUPS)
			break;
		c->groups[c->nr_groups++] = g;
		p = end;
	}
	/* Give back what the largest possible list needed; if realloc fails, the big block stays. */
	c->groups = realloc(c->groups, MAX(c->nr_groups, (size_t)1) * sizeof(*c->groups)) ?: c->groups;
	return 0;
}

/* Everything but securebits, which /proc does not show, from a status text. */
static int parse_status(const char *buf, struct cred_set *c)
{
	const char *p = status_value(buf, "Tgid");

	if (!p || parse_ids(buf, "Uid", c->uid) || parse_ids(buf, "Gid", c->gid))
		return -EINVAL;
	c->tgid = strtol(p, NULL, 10);
	for (int i = 0; i < NR_CAPSETS; i++) {
		p = status_value(buf, status_caps[i]);
		if (!p)
			return -EINVAL;
		c->caps[i] = strtoull(p, NULL, 16);
	}
	p = status_value(buf, "NoNewPrivs");
	if (!p)
		return -EINVAL;
	c->nnp = strtol(p, NULL, 10) != 0;
	p = status_value(buf, "Seccomp");
	c->seccomp = p ? strtoul(p, NULL, 10) : 0;
	return parse_groups(buf, c);
}

/* path is /proc/TID/status or /proc/thread-self/status. */
static int read_status(const char *path, const char *who, struct cred_set *c)
{
	_cleanup_free_ char *buf = read_file_at(AT_FDCWD, path, NULL);
	int ret;

	memset(c, 0, sizeof(*c));
	if (!buf)
		return pr_errno(-errno, "%s: cannot read %s", who, path);
	ret = parse_status(buf, c);
	if (ret == -EINVAL)
		pr_err("%s: %s lacks a credential line this crest reads", who, path);
	return ret;
}

/* One remote call in thread tid; *res gets the raw result (a negative errno on failure). */
static int call(struct infect_ctl *ctl, pid_t tid, long nr, long a0, long a1, long a2, long *res)
{
	long args[6] = { a0, a1, a2 };

	return infect_syscall_tid(ctl, tid, nr, args, res);
}

/* The same for a call that must succeed; what names it in the message. */
static int call_ok(struct infect_ctl *ctl, const struct who *w, const char *what, long nr,
		   long a0, long a1, long a2)
{
	long r;
	int ret = call(ctl, w->tid, nr, a0, a1, a2, &r);

	if (ret)
		return ret;
	if (r < 0)
		return pr_errno((int)r, "pid %d tid %d: cannot %s", w->pid, w->tid, what);
	return 0;
}

/*
 * A thread under seccomp may be killed for a remote prctl(), unless infect could seize it with
 * PTRACE_O_SUSPEND_SECCOMP: granted to a tracer with CAP_SYS_ADMIN not under seccomp itself.
 */
static int check_remote_safe(const struct cred_set *c, pid_t tid)
{
	struct cred_set me;
	int ret;

	if (!c->seccomp)
		return 0;
	ret = read_status("/proc/thread-self/status", "crest", &me);
	free(me.groups);
	if (!ret && (!(me.caps[CAPS_EFF] & CAP_BIT(CAP_SYS_ADMIN)) || me.seccomp))
		ret = pr_errno(-EPERM, "pid %d tid %d: cannot read securebits: the thread is in seccomp mode %u and crest, without CAP_SYS_ADMIN, cannot exempt a remote call from it",
			       c->tgid, tid, c->seccomp);
	return ret;
}

/* The thread's credentials: /proc shows all but securebits, which prctl() tells it alone. */
static int read_thread(struct infect_ctl *ctl, pid_t tid, struct cred_set *c)
{
	char path[64], who[32];
	long r;
	int ret;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	snprintf(who, sizeof(who), "tid %d", tid);
	ret = read_status(path, who, c);
	if (!ret)
		ret = check_remote_safe(c, tid);
	if (!ret)
		ret = call(ctl, tid, SYS_prctl, PR_GET_SECUREBITS, 0, 0, &r);
	if (!ret && r < 0)
		ret = pr_errno((int)r, "pid %d tid %d: prctl(PR_GET_SECUREBITS) failed", c->tgid, tid);
	if (!ret)
		c->securebits = r;
	return ret;
}

/* crest's own, in the thread that runs the restore. */
static int read_caller(struct cred_set *c)
{
	int ret = read_status("/proc/thread-self/status", "crest", c), sb;

	if (ret)
		return ret;
	sb = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
	if (sb < 0)
		return pr_errno(-errno, "crest: prctl(PR_GET_SECUREBITS) failed");
	c->securebits = sb;
	return 0;
}

/* ---- dump --------------------------------------------------------------------------------- */

static void fill_record(Creds *cr, const struct cred_set *c)
{
	cr->uid = c->uid[ID_REAL];
	cr->euid = c->uid[ID_EFF];
	cr->suid = c->uid[ID_SAVED];
	cr->fsuid = c->uid[ID_FS];
	cr->gid = c->gid[ID_REAL];
	cr->egid = c->gid[ID_EFF];
	cr->sgid = c->gid[ID_SAVED];
	cr->fsgid = c->gid[ID_FS];
	cr->cap_inh = c->caps[CAPS_INH];
	cr->cap_prm = c->caps[CAPS_PRM];
	cr->cap_eff = c->caps[CAPS_EFF];
	cr->cap_bnd = c->caps[CAPS_BND];
	cr->cap_amb = c->caps[CAPS_AMB];
	cr->securebits = c->securebits;
	cr->no_new_privs = c->nnp;
}

/* Reads only: the prctl() that fetches securebits changes nothing, so -R leaves all as it was. */
static int creds_dump_thread(struct infect_ctl *ctl, pid_t tid, ProtobufCMessage **ret)
{
	struct cred_set c;
	Creds *cr;
	int err = read_thread(ctl, tid, &c);

	if (err) {
		free(c.groups);
		return err;
	}
	cr = xmalloc(sizeof(*cr));
	if (cr) {
		creds__init(cr);
		fill_record(cr, &c);
		/* The array becomes the record's, which protobuf-c frees. */
		cr->groups = c.groups;
		cr->n_groups = c.nr_groups;
		*ret = &cr->base;
		return 0;
	}
	free(c.groups);
	return -ENOMEM;
}

/* ---- what crest may restore ----------------------------------------------------------------- */

static void image_set(const Creds *cr, struct cred_set *c)
{
	const uint32_t uid[NR_IDS] = { cr->uid, cr->euid, cr->suid, cr->fsuid };
	const uint32_t gid[NR_IDS] = { cr->gid, cr->egid, cr->sgid, cr->fsgid };
	const uint64_t caps[NR_CAPSETS] = { cr->cap_inh, cr->cap_prm, cr->cap_eff, cr->cap_bnd,
					    cr->cap_amb };

	memcpy(c->uid, uid, sizeof(uid));
	memcpy(c->gid, gid, sizeof(gid));
	memcpy(c->caps, caps, sizeof(caps));
	c->groups = cr->groups;
	c->nr_groups = cr->n_groups;
	c->securebits = cr->securebits;
	c->nnp = cr->no_new_privs;
}

/* setres[ug]id() without privilege takes the real, effective or saved id, not the fs one. */
static bool holds_id(const uint32_t ids[NR_IDS], uint32_t id)
{
	for (int i = ID_REAL; i <= ID_SAVED; i++)
		if (ids[i] == id)
			return true;
	return false;
}

static bool same_groups(const struct cred_set *a, const struct cred_set *b)
{
	return a->nr_groups == b->nr_groups &&
	       !memcmp(a->groups, b->groups, a->nr_groups * sizeof(*a->groups));
}

/*
 * Without CAP_SETUID (CAP_SETGID) a thread may only move its ids among those it has: every id
 * of the image must then be one of crest's. Supplementary groups need CAP_SETGID to change.
 */
static int check_ids(const struct who *w, const struct cred_set *me, const struct cred_set *img)
{
	bool setuid = me->caps[CAPS_EFF] & CAP_BIT(CAP_SETUID);
	bool setgid = me->caps[CAPS_EFF] & CAP_BIT(CAP_SETGID);

	for (int i = 0; i < NR_IDS; i++) {
		if (!setuid && !holds_id(me->uid, img->uid[i]))
			return pr_errno(-EPERM, "pid %d tid %d: refusing to restore %s uid %u: crest runs as uid %u without CAP_SETUID",
					w->pid, w->tid, id_names[i], img->uid[i], me->uid[ID_EFF]);
		if (!setgid && !holds_id(me->gid, img->gid[i]))
			return pr_errno(-EPERM, "pid %d tid %d: refusing to restore %s gid %u: crest runs as gid %u without CAP_SETGID",
					w->pid, w->tid, id_names[i], img->gid[i], me->gid[ID_EFF]);
	}
	if (!setgid && !same_groups(me, img))
		return pr_errno(-EPERM, "pid %d tid %d: refusing to restore %zu supplementary groups other than crest's: crest runs without CAP_SETGID",
				w->pid, w->tid, img->nr_groups);
	return 0;
}

/* Names the lowest capability of extra in a refusal. */
static int refuse_cap(const struct who *w, const char *set, uint64_t extra, const char *why)
{
	char buf[32];

	return pr_errno(-EPERM, "pid %d tid %d: refusing to restore %s capability %s: %s", w->pid,
			w->tid, set, cap_name(__builtin_ctzll(extra), buf, sizeof(buf)), why);
}

/*
 * capset() never grants more than the thread's permitted set, which is crest's: permitted,
 * effective and ambient must be within crest's permitted set. A new inheritable capability
 * must be in the bounding set, and also in the permitted set without CAP_SETPCAP. Bounding
 * capabilities can only be dropped, and only with CAP_SETPCAP, which securebits need too.
 */
static int check_caps(const struct who *w, const struct cred_set *me, const struct cred_set *img)
{
	bool setpcap = me->caps[CAPS_EFF] & CAP_BIT(CAP_SETPCAP);
	uint64_t prm = me->caps[CAPS_PRM], inh_ok, extra;
	const int within_prm[] = { CAPS_PRM, CAPS_EFF, CAPS_AMB };

	for (size_t i = 0; i < ARRAY_SIZE(within_prm); i++) {
		extra = img->caps[within_prm[i]] & ~prm;
		if (extra)
			return refuse_cap(w, capset_names[within_prm[i]], extra,
					  "crest's permitted set lacks it");
	}
	inh_ok = me->caps[CAPS_INH] | (setpcap ? me->caps[CAPS_BND] : prm & me->caps[CAPS_BND]);
	extra = img->caps[CAPS_INH] & ~inh_ok;
	if (extra)
		return refuse_cap(w, "inheritable", extra, "crest can neither hold it nor grant it");
	extra = img->caps[CAPS_BND] & ~me->caps[CAPS_BND];
	if (extra)
		return refuse_cap(w, "bounding", extra, "crest's bounding set lacks it");
	if (!setpcap && img->caps[CAPS_BND] != me->caps[CAPS_BND])
		return pr_errno(-EPERM, "pid %d tid %d: refusing to restore the bounding set %#llx: changing it needs CAP_SETPCAP, which crest lacks",
				w->pid, w->tid, (unsigned long long)img->caps[CAPS_BND]);
	if (!setpcap && img->securebits != me->securebits)
		return pr_errno(-EPERM, "pid %d tid %d: refusing to restore securebits %#x: changing them needs CAP_SETPCAP, which crest lacks",
				w->pid, w->tid, img->securebits);
	return 0;
}

static bool same_creds(const struct cred_set *a, const struct cred_set *b)
{
	return !memcmp(a->uid, b->uid, sizeof(a->uid)) && !memcmp(a->gid, b->gid, sizeof(a->gid)) &&
	       !memcmp(a->caps, b->caps, sizeof(a->caps)) && same_groups(a, b) &&
	       a->securebits == b->securebits && a->nnp == b->nnp;
}

static int check_allowed(const struct who *w, const struct cred_set *me,
			 const struct cred_set *now, const struct cred_set *img)
{
	int ret = check_ids(w, me, img);

	if (!ret)
		ret = check_caps(w, me, img);
	/* no_new_privs is a one-way flag: a thread that has it keeps it. */
	if (!ret && now->nnp && !img->nnp)
		ret = pr_errno(-EPERM, "pid %d tid %d: cannot restore no_new_privs 0: the restored thread inherited 1 from crest",
			       w->pid, w->tid);
	return ret;
}

/* ---- restore ------------------------------------------------------------------------------ */

/*
 * commit_creds() resets the process's dumpable flag (to fs.suid_dumpable) and the thread's
 * parent-death signal whenever an effective or fs id changes (or the permitted set grows): a
 * kind that restored either before this one would lose it. Saved here, put back afterwards.
 */
struct side_effects {
	long dumpable;
	int pdeathsig;
};

static int save_side_effects(struct infect_ctl *ctl, const struct who *w, struct side_effects *s)
{
	uint64_t addr;
	long r;
	int ret = call(ctl, w->tid, SYS_prctl, PR_GET_DUMPABLE, 0, 0, &s->dumpable);

	if (!ret)
		ret = infect_scratch(ctl, sizeof(s->pdeathsig), &addr);
	if (!ret)
		ret = call(ctl, w->tid, SYS_prctl, PR_GET_PDEATHSIG, (long)addr, 0, &r);
	if (!ret && (s->dumpable < 0 || r < 0))
		ret = pr_errno(-EIO, "pid %d tid %d: cannot read dumpable and pdeathsig", w->pid, w->tid);
	if (!ret)
		ret = infect_read(ctl, addr, &s->pdeathsig, sizeof(s->pdeathsig));
	return ret;
}

static int restore_dumpable(struct infect_ctl *ctl, const struct who *w, long dumpable)
{
	long now;
	int ret = call(ctl, w->tid, SYS_prctl, PR_GET_DUMPABLE, 0, 0, &now);

	if (ret || now == dumpable)
		return ret;
	/* SUID_DUMP_ROOT (2) comes only from suid_dumpable; prctl() can set 0 and 1. */
	if (dumpable > 1)
		return pr_errno(-EINVAL, "pid %d tid %d: changing credentials reset dumpable %ld to %ld, and prctl() cannot set it back",
				w->pid, w->tid, dumpable, now);
	return call_ok(ctl, w, "set dumpable back after changing credentials", SYS_prctl,
		       PR_SET_DUMPABLE, dumpable, 0);
}

static int restore_side_effects(struct infect_ctl *ctl, const struct who *w,
				const struct side_effects *s)
{
	int ret = restore_dumpable(ctl, w, s->dumpable);

	if (!ret && s->pdeathsig)
		ret = call_ok(ctl, w, "set the parent-death signal back after changing credentials",
			      SYS_prctl, PR_SET_PDEATHSIG, s->pdeathsig, 0);
	return ret;
}

/*
 * While ids change, the thread keeps every capability: SECBIT_KEEP_CAPS keeps the permitted set
 * across setresuid() away from uid 0, and SECBIT_NO_SETUID_FIXUP skips the rest of that fixup
 * (clearing effective, fs-related and ambient capabilities), so CAP_SETUID, CAP_SETGID and
 * CAP_SETPCAP stay effective up to the final capset(). Needs CAP_SETPCAP; without it crest has
 * no capabilities to lose and moves among non-root ids, where no fixup applies.
 */
static int keep_caps(struct infect_ctl *ctl, const struct who *w, struct cred_set *now)
{
	uint32_t want = now->securebits | SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP;
	int ret;

	if (!(now->caps[CAPS_EFF] & CAP_BIT(CAP_SETPCAP)) || want == now->securebits)
		return 0;
	ret = call_ok(ctl, w, "set SECBIT_KEEP_CAPS and SECBIT_NO_SETUID_FIXUP for the restore",
		      SYS_prctl, PR_SET_SECUREBITS, want, 0);
	if (!ret)
		now->securebits = want;
	return ret;
}

/* capset() with the v3 header (64-bit sets), for the thread itself (pid 0). */
static int set_caps(struct infect_ctl *ctl, const struct who *w, uint64_t eff, uint64_t prm,
		    uint64_t inh)
{
	struct {
		struct __user_cap_header_struct hdr;
		struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	} buf = { .hdr = { _LINUX_CAPABILITY_VERSION_3, 0 } };
	uint64_t addr;
	int ret;

	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
		buf.data[i].effective = eff >> (32 * i);
		buf.data[i].permitted = prm >> (32 * i);
		buf.data[i].inheritable = inh >> (32 * i);
	}
	ret = infect_scratch(ctl, sizeof(buf), &addr);
	if (!ret)
		ret = infect_write(ctl, addr, &buf, sizeof(buf));
	if (!ret)
		ret = call_ok(ctl, w, "set capabilities (capset)", SYS_capset, (long)addr,
			      (long)(addr + sizeof(buf.hdr)), 0);
	return ret;
}

/*
 * Capabilities before the ids, while crest's full sets are still there: the inheritable set
 * first (capset() takes a new inheritable capability only from the bounding set, so before
 * that shrinks), then the ambient set (each must be permitted and inheritable; the final
 * capset() keeps them, the image's ambient set being within its permitted and inheritable
 * sets), then the bounding set (PR_CAPBSET_DROP needs CAP_SETPCAP effective).
 */
static int set_early_caps(struct infect_ctl *ctl, const struct who *w, const struct cred_set *now,
			  const struct cred_set *img)
{
	int ret = 0;

	if (img->caps[CAPS_INH] != now->caps[CAPS_INH])
		ret = set_caps(ctl, w, now->caps[CAPS_EFF], now->caps[CAPS_PRM], img->caps[CAPS_INH]);
	if (!ret && img->caps[CAPS_AMB] != now->caps[CAPS_AMB]) {
		ret = call_ok(ctl, w, "clear the ambient capabilities", SYS_prctl, PR_CAP_AMBIENT,
			      PR_CAP_AMBIENT_CLEAR_ALL, 0);
		for (unsigned int c = 0; !ret && c < 64; c++)
			if (img->caps[CAPS_AMB] & CAP_BIT(c))
				ret = call_ok(ctl, w, "raise an ambient capability", SYS_prctl,
					      PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c);
	}
	for (unsigned int c = 0; !ret && c < 64; c++)
		if ((now->caps[CAPS_BND] & ~img->caps[CAPS_BND]) & CAP_BIT(c))
			ret = call_ok(ctl, w, "drop a capability from the bounding set", SYS_prctl,
				      PR_CAPBSET_DROP, c, 0);
	return ret;
}

static int set_groups(struct infect_ctl *ctl, const struct who *w, const struct cred_set *img)
{
	size_t len = img->nr_groups * sizeof(*img->groups);
	uint64_t addr;
	int ret = infect_scratch(ctl, len, &addr);

	if (!ret && len)
		ret = infect_write(ctl, addr, img->groups, len);
	if (!ret)
		ret = call_ok(ctl, w, "set the supplementary groups (setgroups)", SYS_setgroups,
			      (long)img->nr_groups, (long)addr, 0);
	return ret;
}

/*
 * setres[ug]id() also sets the fs id to the new effective one, so the fs id comes after.
 * setfs[ug]id() returns the old id, never an error: the final check sees a refusal.
 */
static int set_id_set(struct infect_ctl *ctl, const struct who *w, const uint32_t now[NR_IDS],
		      const uint32_t want[NR_IDS], long nr_setres, long nr_setfs, const char *what)
{
	uint32_t fs = now[ID_FS];
	char msg[48];
	long r;
	int ret = 0;

	if (memcmp(now, want, ID_FS * sizeof(*now))) {
		snprintf(msg, sizeof(msg), "set the %s ids", what);
		ret = call_ok(ctl, w, msg, nr_setres, want[ID_REAL], want[ID_EFF], want[ID_SAVED]);
		fs = want[ID_EFF];
	}
	if (!ret && fs != want[ID_FS])
		ret = call(ctl, w->tid, nr_setfs, want[ID_FS], 0, 0, &r);
	return ret;
}

/* Groups and gids before uids: a thread that gave up uid 0 could not change them any more. */
static int set_ids(struct infect_ctl *ctl, const struct who *w, const struct cred_set *now,
		   const struct cred_set *img)
{
	int ret = 0;

	if (!same_groups(now, img))
		ret = set_groups(ctl, w, img);
	if (!ret)
		ret = set_id_set(ctl, w, now->gid, img->gid, SYS_setresgid, SYS_setfsgid, "group");
	if (!ret)
		ret = set_id_set(ctl, w, now->uid, img->uid, SYS_setresuid, SYS_setfsuid, "user");
	return ret;
}

/*
 * The image's securebits while CAP_SETPCAP is still effective (lock bits included: nothing
 * after this changes them), then its three capability sets, then no_new_privs, which needs
 * no privilege and cannot be taken back.
 */
static int set_final(struct infect_ctl *ctl, const struct who *w, const struct cred_set *now,
		     const struct cred_set *img)
{
	int ret = 0;

	if (img->securebits != now->securebits)
		ret = call_ok(ctl, w, "set securebits", SYS_prctl, PR_SET_SECUREBITS,
			      img->securebits, 0);
	if (!ret)
		ret = set_caps(ctl, w, img->caps[CAPS_EFF], img->caps[CAPS_PRM], img->caps[CAPS_INH]);
	if (!ret && img->nnp && !now->nnp)
		ret = call_ok(ctl, w, "set no_new_privs", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0);
	return ret;
}

/* Reads the thread back: whatever the kernel did not take is named. */
static int verify(struct infect_ctl *ctl, const struct who *w, const struct cred_set *img)
{
	struct cred_set got;
	int ret = read_thread(ctl, w->tid, &got);

	for (int i = 0; !ret && i < NR_IDS; i++) {
		if (got.uid[i] != img->uid[i])
			ret = pr_errno(-EPERM, "pid %d tid %d: %s uid is %u after the restore, want %u",
				       w->pid, w->tid, id_names[i], got.uid[i], img->uid[i]);
		else if (got.gid[i] != img->gid[i])
			ret = pr_errno(-EPERM, "pid %d tid %d: %s gid is %u after the restore, want %u",
				       w->pid, w->tid, id_names[i], got.gid[i], img->gid[i]);
	}
	for (int i = 0; !ret && i < NR_CAPSETS; i++)
		if (got.caps[i] != img->caps[i])
			ret = pr_errno(-EPERM, "pid %d tid %d: %s capabilities are %#llx after the restore, want %#llx",
				       w->pid, w->tid, capset_names[i], (unsigned long long)got.caps[i],
				       (unsigned long long)img->caps[i]);
	if (!ret && !same_groups(&got, img))
		ret = pr_errno(-EPERM, "pid %d tid %d: the supplementary groups differ after the restore",
			       w->pid, w->tid);
	if (!ret && (got.securebits != img->securebits || got.nnp != img->nnp))
		ret = pr_errno(-EPERM, "pid %d tid %d: securebits %#x no_new_privs %d after the restore, want %#x and %d",
			       w->pid, w->tid, got.securebits, got.nnp, img->securebits, img->nnp);
	free(got.groups);
	return ret;
}

/* The steps, in an order where each still has the capability it needs (see each step). */
static int apply(struct infect_ctl *ctl, const struct who *w, struct cred_set *now,
		 const struct cred_set *img)
{
	struct side_effects saved;
	int ret = save_side_effects(ctl, w, &saved);

	if (!ret)
		ret = keep_caps(ctl, w, now);
	if (!ret)
		ret = set_early_caps(ctl, w, now, img);
	if (!ret)
		ret = set_ids(ctl, w, now, img);
	if (!ret)
		ret = set_final(ctl, w, now, img);
	if (!ret)
		ret = restore_side_effects(ctl, w, &saved);
	if (!ret)
		ret = verify(ctl, w, img);
	return ret;
}

static int creds_restore_thread(struct infect_ctl *ctl, pid_t tid, const ProtobufCMessage *rec)
{
	struct cred_set img = { 0 }, now = { 0 }, me = { 0 };
	struct who w = { .tid = tid };
	int ret;

	image_set((const Creds *)rec, &img);
	ret = read_thread(ctl, tid, &now);
	w.pid = now.tgid;
	/* Most often crest restores its own credentials: nothing to change, nothing to check. */
	if (!ret && same_creds(&now, &img))
		goto out;
	if (!ret)
		ret = read_caller(&me);
	if (!ret)
		ret = check_allowed(&w, &me, &now, &img);
	if (!ret)
		ret = apply(ctl, &w, &now, &img);
out:
	free(now.groups);
	free(me.groups);
	return ret;
}

const struct task_kind task_kind_creds = {
	.name = "creds",
	.desc = &creds__descriptor,
	.dump_thread = creds_dump_thread,
	.restore_thread_final = creds_restore_thread,
};
