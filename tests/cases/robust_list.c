/*
 * robust_list: every thread keeps its robust futex list registration, so a robust mutex
 * whose owner dies is handed on with EOWNERDEAD instead of staying locked for good.
 *
 *   main    glibc's registration (checked with get_robust_list(0))
 *   holder  glibc's registration; holds a robust mutex across the checkpoint, then exits
 *           (raw exit, so only the kernel's walk of its list can release the mutex)
 *
 * A thread that lost its registration reads head NULL, and the mutex it leaves behind stays
 * locked: the main thread's timed lock then fails with ETIMEDOUT.
 */
#include <pthread.h>
#include <linux/futex.h>

#include "case.h"

struct reg {
	void *head;
	size_t len;
};

static pthread_mutex_t robust;
static volatile sig_atomic_t holding, go;
static struct reg holder_reg;

static void get_reg(struct reg *r)
{
	if (syscall(SYS_get_robust_list, 0, &r->head, &r->len))
		case_die("get_robust_list: %m");
}

static void check_reg(const char *who, const struct reg *want)
{
	struct reg now;

	get_reg(&now);
	case_check(now.head == want->head && now.len == want->len,
		   "%s: robust list %p (%zu bytes), want %p (%zu bytes)", who, now.head, now.len,
		   want->head, want->len);
}

static void *holder(void *arg)
{
	case_block_term(NULL);
	get_reg(&holder_reg);
	if (!holder_reg.head)
		case_die("glibc registered no robust list for a thread");
	if (pthread_mutex_lock(&robust))
		case_die("pthread_mutex_lock");
	holding = 1;
	while (!go)
		case_sleep_ms(10);
	if (case_sabotage("holder-list"))
		syscall(SYS_set_robust_list, NULL, sizeof(struct robust_list_head));
	check_reg("holder", &holder_reg);
	/* Dies holding the mutex; glibc's exit path is skipped on purpose. */
	syscall(SYS_exit, 0);
	return NULL;
}

static void setup_mutex(void)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	if (pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST))
		case_die("pthread_mutexattr_setrobust");
	if (pthread_mutex_init(&robust, &attr))
		case_die("pthread_mutex_init");
	pthread_mutexattr_destroy(&attr);
}

/* The holder is gone: the mutex must come to us marked EOWNERDEAD. */
static void check_handover(void)
{
	struct timespec until;
	int ret;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	ret = pthread_mutex_timedlock(&robust, &until);
	if (ret != EOWNERDEAD) {
		case_fail("locking the mutex its dead holder left: %s, want EOWNERDEAD", strerror(ret));
		return;
	}
	pthread_mutex_consistent(&robust);
	pthread_mutex_unlock(&robust);
}

int main(int argc, char **argv)
{
	struct reg main_reg;
	pthread_t th;

	case_init(argc, argv);
	get_reg(&main_reg);
	if (!main_reg.head)
		case_die("glibc registered no robust list for the main thread");
	setup_mutex();
	if (pthread_create(&th, NULL, holder, NULL))
		case_die("pthread_create");
	while (!holding)
		case_sleep_ms(5);
	case_ready_wait();

	if (case_sabotage("main-list"))
		syscall(SYS_set_robust_list, NULL, sizeof(struct robust_list_head));
	check_reg("main", &main_reg);
	go = 1;
	pthread_join(th, NULL);
	check_handover();
	case_finish();
}
