/*
 * creds: per-thread credentials survive a checkpoint.
 *
 *   root      the case process itself, root with crest's capabilities: must come back as it was
 *   child     uids 1000/1001/1002 (real/effective/saved), gids 1000/1001/1002, groups
 *             {1000, 2000}; permitted {NET_BIND_SERVICE, NET_RAW, SETUID, SETPCAP}, effective
 *             {NET_BIND_SERVICE, NET_RAW}, inheritable {NET_BIND_SERVICE, CHOWN}, ambient
 *             {NET_BIND_SERVICE}; CAP_SYS_ADMIN out of the bounding set; securebits
 *             NOROOT|NOROOT_LOCKED|KEEP_CAPS; no_new_privs
 *   worker    a second thread of the child, with its own credentials (raw syscalls change one
 *             thread only): fsuid 1002, fsgid 1000, effective {NET_BIND_SERVICE},
 *             CAP_MKNOD also out of its bounding set, and no no_new_privs
 *
 * A restore that forgets them gives a root thread with crest's capabilities, which the
 * checks catch; one that restores a single set for the whole process loses the worker's.
 */
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <grp.h>
#include <sys/prctl.h>

#include "case.h"

#define BIT(c)		(1ULL << (c))
#define CHILD_PRM	(BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_NET_RAW) | BIT(CAP_SETUID) | \
			 BIT(CAP_SETPCAP))
#define CHILD_EFF	(BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_NET_RAW))
#define CHILD_INH	(BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_CHOWN))
#define WORKER_EFF	BIT(CAP_NET_BIND_SERVICE)
#define CHILD_BITS	(SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS)

/* The credential lines of /proc/thread-self/status, and securebits. */
struct creds {
	char lines[1024];
	int securebits;
};

static const char *const keys[] = {
	"Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:",
	"NoNewPrivs:",
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;	/* 1: worker set up; 2: worker may check; 3: worker done */

static void get_creds(struct creds *c)
{
	char buf[4096], *line, *save = NULL;
	size_t off = 0;

	if (case_read_file("/proc/thread-self/status", buf, sizeof(buf)) < 0)
		case_die("read /proc/thread-self/status: %m");
	c->lines[0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
			if (!strncmp(line, keys[k], strlen(keys[k])))
				off += snprintf(c->lines + off, sizeof(c->lines) - off, "%s; ", line);
	c->securebits = prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
}

static void compare(const char *who, const struct creds *want)
{
	struct creds now;

	get_creds(&now);
	case_check(!strcmp(now.lines, want->lines), "%s: credentials [%s], want [%s]", who,
		   now.lines, want->lines);
	case_check(now.securebits == want->securebits, "%s: securebits %#x, want %#x", who,
		   now.securebits, want->securebits);
}

/* capset() for the calling thread alone (glibc does not broadcast it). */
static void set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	for (int i = 0; i < 2; i++) {
		data[i].effective = eff >> (32 * i);
		data[i].permitted = prm >> (32 * i);
		data[i].inheritable = inh >> (32 * i);
	}
	if (syscall(SYS_capset, &hdr, data))
		case_die("capset: %m");
}

static void wait_stage(int want)
{
	pthread_mutex_lock(&lock);
	while (stage < want)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
}

static void set_stage(int s)
{
	pthread_mutex_lock(&lock);
	stage = s;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
}

static void *worker(void *arg)
{
	struct creds want;

	/* Raw syscalls: each changes this thread only. */
	syscall(SYS_setfsuid, 1002);
	syscall(SYS_setfsgid, 1000);
	set_caps(BIT(CAP_SETPCAP), CHILD_PRM, CHILD_INH);
	if (syscall(SYS_prctl, PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0))
		case_die("worker: PR_CAPBSET_DROP: %m");
	set_caps(WORKER_EFF, CHILD_PRM, CHILD_INH);
	get_creds(&want);
	if (!strstr(want.lines, "Uid:\t1000\t1001\t1002\t1002") ||
	    !strstr(want.lines, "NoNewPrivs:\t0"))
		case_die("worker: unexpected credentials [%s]", want.lines);
	set_stage(1);
	wait_stage(2);
	if (case_sabotage("worker-fsuid"))
		syscall(SYS_setfsuid, 1000);
	if (case_sabotage("worker-effective"))
		set_caps(0, CHILD_PRM, CHILD_INH);
	compare("worker", &want);
	set_stage(3);
	return NULL;
}

/*
 * Threads made with SIGTERM blocked: the signal that starts the checks must reach the thread
 * waiting for it in case_wait(), not a worker that would run the handler and leave it asleep.
 */
static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg)
{
	sigset_t term, old;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, &old);
	if (pthread_create(th, NULL, fn, arg))
		case_die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* As root, with KEEP_CAPS so that the permitted set survives leaving uid 0. */
static void drop_privileges(void)
{
	const gid_t groups[] = { 1000, 2000 };

	if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS, 0, 0, 0))
		case_die("PR_SET_SECUREBITS: %m");
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0))
		case_die("PR_CAPBSET_DROP: %m");
	if (setgroups(2, groups) || setresgid(1000, 1001, 1002) || setresuid(1000, 1001, 1002))
		case_die("setting ids: %m");
	/* KEEP_CAPS kept the permitted set; securebits need CAP_SETPCAP effective. */
	set_caps(CHILD_PRM, CHILD_PRM, CHILD_INH);
	if (prctl(PR_SET_SECUREBITS, CHILD_BITS, 0, 0, 0))
		case_die("PR_SET_SECUREBITS %#x: %m", CHILD_BITS);
	set_caps(CHILD_EFF, CHILD_PRM, CHILD_INH);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		case_die("PR_CAP_AMBIENT_RAISE: %m");
}

static void child(int ready_fd)
{
	struct creds want;
	pthread_t th;

	drop_privileges();
	start_thread(&th, worker, NULL);
	wait_stage(1);
	/* After the worker exists: no_new_privs is per thread too. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		case_die("PR_SET_NO_NEW_PRIVS: %m");
	get_creds(&want);
	if (!strstr(want.lines, "Groups:\t1000 2000") || !strstr(want.lines, "CapAmb:\t0000000000000400"))
		case_die("child: unexpected credentials [%s]", want.lines);
	if (write(ready_fd, "r", 1) != 1)
		case_die("write: %m");
	close(ready_fd);
	case_wait();
	if (case_sabotage("child-euid"))
		syscall(SYS_setresuid, -1, 1000, -1);
	compare("child", &want);
	set_stage(2);
	wait_stage(3);
	pthread_join(th, NULL);
	case_child_exit();
}

int main(int argc, char **argv)
{
	struct creds want;
	pid_t pid;
	int fds[2];
	char c;

	case_init(argc, argv);
	if (geteuid() != 0)
		case_die("needs root");
	get_creds(&want);
	if (pipe(fds))
		case_die("pipe: %m");
	pid = case_fork();
	if (pid == 0) {
		close(fds[0]);
		child(fds[1]);
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1)
		case_die("the child did not get ready");
	close(fds[0]);
	case_ready();
	case_wait();
	compare("root", &want);
	case_check_child(pid, "child");
	case_finish();
}
