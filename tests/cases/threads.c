/*
 * threads: 64 threads, each with its own name, signal mask and TLS value, all blocked on one
 * condition variable, keep their identity across a checkpoint.
 *
 * Before "ready" every thread records its tid, its TLS variable and that variable's address,
 * and the clear_child_tid address glibc gave the kernel (PR_GET_TID_ADDRESS). After SIGTERM the
 * main thread checks the task list and every thread's comm in /proc, then wakes them all with
 * one broadcast; each checks its own tid, name, mask, TLS and clear_child_tid, and exits.
 * pthread_join() returns only because the kernel clears and futex-wakes the tid word at
 * clear_child_tid when a thread exits, so a restore that forgets set_tid_address() makes the
 * (timed) joins fail.
 */
#include "case.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/prctl.h>

#define NTHREADS 64
#define TLS_MAGIC 0x715c0ffee0000000ull

struct rec {
	pthread_t th;
	int idx;
	pid_t tid;
	uint64_t *tls_addr;
	unsigned long tid_address;	/* PR_GET_TID_ADDRESS, 0 if the kernel cannot say */
	char name[16];
	sigset_t mask;
};

static struct rec recs[NTHREADS];
static __thread uint64_t tls_val;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static int nready, go;
/* Sabotage chosen by the main thread after SIGTERM, acted on by the threads. */
static bool sab_name, sab_mask, sab_tls, sab_cleartid;
static pid_t dummy_tid_word;

/* Thread i blocks SIGTERM (only main handles it), six signals by the bits of i, and one RT signal. */
static void thread_mask(int i, sigset_t *set)
{
	const int bitsigs[6] = { SIGUSR1, SIGUSR2, SIGHUP, SIGALRM, SIGRTMIN + 1, SIGRTMIN + 2 };

	sigemptyset(set);
	sigaddset(set, SIGTERM);
	for (int j = 0; j < 6; j++)
		if (i & (1 << j))
			sigaddset(set, bitsigs[j]);
	sigaddset(set, SIGRTMIN + 4 + i % 16);
}

static void check_self(struct rec *r)
{
	char name[16] = "", path[64], comm[64];
	unsigned long addr = 0;
	sigset_t cur;

	if (sab_name && r->idx == 5)
		pthread_setname_np(pthread_self(), "renamed");
	if (sab_mask && r->idx == 7) {
		sigaddset(&r->mask, SIGINT);
		pthread_sigmask(SIG_BLOCK, &r->mask, NULL);
	}
	if (sab_tls && r->idx == 9)
		tls_val ^= 1;
	if (sab_cleartid && r->idx == 3)
		syscall(SYS_set_tid_address, &dummy_tid_word);

	case_check(case_gettid() == r->tid, "thread %d: tid %d, want %d", r->idx, case_gettid(),
		   r->tid);
	case_check(&tls_val == r->tls_addr, "thread %d: TLS variable at %p, want %p", r->idx,
		   (void *)&tls_val, (void *)r->tls_addr);
	case_check(tls_val == (TLS_MAGIC | (uint64_t)r->idx), "thread %d: TLS value %#llx, want %#llx",
		   r->idx, (unsigned long long)tls_val, (unsigned long long)(TLS_MAGIC | r->idx));
	pthread_getname_np(pthread_self(), name, sizeof(name));
	case_check(!strcmp(name, r->name), "thread %d: name \"%s\", want \"%s\"", r->idx, name,
		   r->name);
	snprintf(path, sizeof(path), "/proc/thread-self/comm");
	if (case_read_file(path, comm, sizeof(comm)) > 0)
		comm[strcspn(comm, "\n")] = '\0';
	case_check(!strcmp(comm, r->name), "thread %d: /proc/thread-self/comm \"%s\", want \"%s\"",
		   r->idx, comm, r->name);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	thread_mask(r->idx, &r->mask);
	for (int s = 1; s <= SIGRTMAX; s++)
		if (sigismember(&cur, s) != sigismember(&r->mask, s))
			case_fail("thread %d: signal %d is %sblocked, want %sblocked", r->idx, s,
				  sigismember(&cur, s) ? "" : "not ",
				  sigismember(&r->mask, s) ? "" : "not ");
	if (r->tid_address && prctl(PR_GET_TID_ADDRESS, &addr) == 0)
		case_check(addr == r->tid_address, "thread %d: clear_child_tid %#lx, want %#lx",
			   r->idx, addr, r->tid_address);
}

static void *thread_fn(void *arg)
{
	struct rec *r = arg;

	snprintf(r->name, sizeof(r->name), "crest-t%02d", r->idx);
	pthread_setname_np(pthread_self(), r->name);
	thread_mask(r->idx, &r->mask);
	pthread_sigmask(SIG_SETMASK, &r->mask, NULL);
	tls_val = TLS_MAGIC | (uint64_t)r->idx;
	r->tls_addr = &tls_val;
	r->tid = case_gettid();
	if (prctl(PR_GET_TID_ADDRESS, &r->tid_address))
		r->tid_address = 0;	/* kernel without CONFIG_CHECKPOINT_RESTORE */

	pthread_mutex_lock(&lock);
	nready++;
	pthread_cond_signal(&ready_cond);
	while (!go)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	check_self(r);
	return NULL;
}

/* The task list and each thread's comm as the main thread sees them in /proc. */
static void check_from_main(void)
{
	char path[64], comm[64];
	int ntasks = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			ntasks++;
	if (d)
		closedir(d);
	case_check(ntasks == NTHREADS + 1, "/proc/self/task has %d tasks, want %d", ntasks,
		   NTHREADS + 1);
	case_check(case_gettid() == getpid(), "main thread tid %d is not the pid %d",
		   case_gettid(), getpid());
	for (int i = 0; i < NTHREADS; i++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", recs[i].tid);
		if (case_read_file(path, comm, sizeof(comm)) < 0) {
			case_fail("thread %d: no task %d: %m", i, recs[i].tid);
			continue;
		}
		comm[strcspn(comm, "\n")] = '\0';
		case_check(!strcmp(comm, recs[i].name), "thread %d: %s is \"%s\", want \"%s\"", i,
			   path, comm, recs[i].name);
	}
}

int main(int argc, char **argv)
{
	struct timespec until;

	case_init(argc, argv);
	for (int i = 0; i < NTHREADS; i++) {
		recs[i].idx = i;
		if (pthread_create(&recs[i].th, NULL, thread_fn, &recs[i]))
			case_die("pthread_create %d failed", i);
	}
	pthread_mutex_lock(&lock);
	while (nready < NTHREADS)
		pthread_cond_wait(&ready_cond, &lock);
	pthread_mutex_unlock(&lock);
	case_ready_wait();

	if (case_sabotage("tid"))
		recs[11].tid++;
	check_from_main();
	sab_name = case_sabotage("name");
	sab_mask = case_sabotage("mask");
	sab_tls = case_sabotage("tls");
	sab_cleartid = case_sabotage("cleartid");

	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_timedjoin_np(recs[i].th, NULL, &until)) {
			case_fail("thread %d (tid %d): pthread_join timed out: clear_child_tid lost?",
				  i, recs[i].tid);
			exit(1);
		}
	case_finish();
}
