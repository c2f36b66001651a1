/*
 * taskattrs: resource limits and per-thread scheduling survive a checkpoint.
 *
 *   process   RLIMIT_NOFILE 200/4000, RLIMIT_CORE 0/1 MiB, RLIMIT_STACK 4 MiB/unlimited,
 *             RLIMIT_MSGQUEUE 4096/8192
 *   main      nice 5, I/O priority best-effort 6, timer slack 654321 ns
 *   worker    SCHED_BATCH, nice 9, affinity {CPU 0}, I/O priority idle, timer slack 123456 ns
 *
 * A restore that forgets any of them gives crest's own values (nice 0, SCHED_OTHER, every
 * CPU, no I/O class, 50 us slack, crest's limits), which the checks catch.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "case.h"

#define IOPRIO_WHO_PROCESS 1
#define IOPRIO(cls, lvl) (((cls) << 13) | (lvl))

struct attrs {
	int policy, nice, ioprio;
	long slack;
	cpu_set_t cpus;
};

static const struct { int res; rlim_t cur, max; const char *name; } limits[] = {
	{ RLIMIT_NOFILE, 200, 4000, "nofile" },
	{ RLIMIT_CORE, 0, 1 << 20, "core" },
	{ RLIMIT_STACK, 4 << 20, RLIM_INFINITY, "stack" },
	{ RLIMIT_MSGQUEUE, 4096, 8192, "msgqueue" },
};

/* The stages (case_set_stage): 1: worker set up; 2: worker may check; 3: worker done. */

static void set_attrs(int policy, int nice, int ioprio, long slack, int cpu)
{
	struct sched_param param = { 0 };
	cpu_set_t cpus;

	if (sched_setscheduler(0, policy, &param))
		case_die("sched_setscheduler: %m");
	if (setpriority(PRIO_PROCESS, gettid(), nice))
		case_die("setpriority: %m");
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, gettid(), ioprio))
		case_die("ioprio_set: %m");
	if (prctl(PR_SET_TIMERSLACK, slack, 0, 0, 0))
		case_die("PR_SET_TIMERSLACK: %m");
	if (cpu >= 0) {
		CPU_ZERO(&cpus);
		CPU_SET(cpu, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus))
			case_die("sched_setaffinity: %m");
	}
}

static void get_attrs(struct attrs *a)
{
	a->policy = sched_getscheduler(0);
	errno = 0;
	a->nice = getpriority(PRIO_PROCESS, gettid());
	a->ioprio = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, gettid());
	a->slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	sched_getaffinity(0, sizeof(a->cpus), &a->cpus);
}

static void compare(const char *who, const struct attrs *want)
{
	struct attrs now;

	get_attrs(&now);
	case_check(now.policy == want->policy, "%s: policy %d, want %d", who, now.policy, want->policy);
	case_check(now.nice == want->nice, "%s: nice %d, want %d", who, now.nice, want->nice);
	case_check(now.ioprio == want->ioprio, "%s: ioprio %#x, want %#x", who, now.ioprio, want->ioprio);
	case_check(now.slack == want->slack, "%s: timer slack %ld, want %ld", who, now.slack, want->slack);
	case_check(CPU_EQUAL(&now.cpus, &want->cpus), "%s: CPU affinity differs (%d CPUs, want %d)",
		   who, CPU_COUNT(&now.cpus), CPU_COUNT(&want->cpus));
}

static void *worker(void *arg)
{
	struct attrs want;

	/* SIGTERM is the main thread's: a worker taking it would leave main waiting. */
	case_block_term(NULL);
	set_attrs(SCHED_BATCH, 9, IOPRIO(3, 0), 123456, 0);
	get_attrs(&want);
	case_set_stage(1);
	case_wait_stage(2);
	if (case_sabotage("worker-affinity")) {
		cpu_set_t all;

		CPU_ZERO(&all);
		for (int i = 0; i < 2; i++)
			CPU_SET(i, &all);
		sched_setaffinity(0, sizeof(all), &all);
	}
	if (case_sabotage("worker-policy"))
		sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){ 0 });
	compare("worker", &want);
	case_set_stage(3);
	return NULL;
}

static void check_limits(void)
{
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit now;

		getrlimit(limits[i].res, &now);
		case_check(now.rlim_cur == limits[i].cur && now.rlim_max == limits[i].max,
			   "RLIMIT %s: %llu/%llu, want %llu/%llu", limits[i].name,
			   (unsigned long long)now.rlim_cur, (unsigned long long)now.rlim_max,
			   (unsigned long long)limits[i].cur, (unsigned long long)limits[i].max);
	}
}

int main(int argc, char **argv)
{
	struct attrs want;
	pthread_t th;

	case_init(argc, argv);
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		if (setrlimit(limits[i].res, &(struct rlimit){ limits[i].cur, limits[i].max }))
			case_die("setrlimit %s: %m", limits[i].name);
	set_attrs(SCHED_OTHER, 5, IOPRIO(2, 6), 654321, -1);
	get_attrs(&want);
	if (pthread_create(&th, NULL, worker, NULL))
		case_die("pthread_create");
	case_wait_stage(1);
	case_ready_wait();

	if (case_sabotage("nofile"))
		setrlimit(RLIMIT_NOFILE, &(struct rlimit){ 300, 4000 });
	if (case_sabotage("nice"))
		setpriority(PRIO_PROCESS, gettid(), 0);
	if (case_sabotage("slack"))
		prctl(PR_SET_TIMERSLACK, 50000, 0, 0, 0);
	check_limits();
	compare("main", &want);
	case_set_stage(2);
	case_wait_stage(3);
	pthread_join(th, NULL);
	case_finish();
}
