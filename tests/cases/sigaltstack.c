/*
 * sigaltstack: every thread keeps its own alternate signal stack, and a handler that was
 * running on one when the dump came carries on there and returns.
 *
 *   main     40000 bytes, flags 0
 *   onstack  64 KiB, flags 0; at dump time inside a SIGUSR1 handler on that stack, waiting
 *   disarm   128 KiB, SS_AUTODISARM (flags 0 where the kernel lacks it)
 *
 * After the restore each thread reads its stack back, and a SIGUSR2 to each must run on it
 * (with SS_AUTODISARM the handler sees the stack disabled, and it is armed again after).
 * The waiting handler must see SS_ONSTACK, find its canary on the stack, and return to the
 * thread's code, after which the stack reads as before with the flag gone.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "case.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

struct alt {
	const char *name;
	size_t size;
	int flags;
	char *sp;
	pthread_t th;
	volatile sig_atomic_t set_up;
};

static struct alt alts[] = {
	{ "main", 40000, 0 },
	{ "onstack", 64 << 10, 0 },
	{ "disarm", 128 << 10, SS_AUTODISARM },
};

static __thread struct alt *self;
static volatile sig_atomic_t go, in_handler;
/* What the SIGUSR2 handler saw: on its stack or not, and the flags sigaltstack() gave. */
static __thread volatile int usr2_on_alt = -1, usr2_flags = -1;

static bool on_alt(const void *p)
{
	return (const char *)p >= self->sp && (const char *)p < self->sp + self->size;
}

static void set_alt(struct alt *a)
{
	stack_t ss = { .ss_size = a->size, .ss_flags = a->flags };
	int ret;

	a->sp = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a->sp == MAP_FAILED)
		case_die("mmap: %m");
	ss.ss_sp = a->sp;
	ret = sigaltstack(&ss, NULL);
	if (ret && errno == EINVAL && a->flags) {
		/* Before Linux 4.7 there is no SS_AUTODISARM. */
		a->flags = ss.ss_flags = 0;
		case_say("no SS_AUTODISARM here");
		ret = sigaltstack(&ss, NULL);
	}
	if (ret)
		case_die("sigaltstack(%s): %m", a->name);
	self = a;
}

/* The stack must read as set, SS_ONSTACK only when expected. */
static void check_alt(const char *when, int onstack)
{
	stack_t ss;

	sigaltstack(NULL, &ss);
	case_check(ss.ss_sp == self->sp && ss.ss_size == self->size &&
		   ss.ss_flags == (self->flags | onstack),
		   "%s %s: alternate stack %p, %zu bytes, flags %#x; want %p, %zu bytes, flags %#x",
		   self->name, when, ss.ss_sp, ss.ss_size, ss.ss_flags, self->sp, self->size,
		   self->flags | onstack);
}

static void on_usr2(int sig)
{
	stack_t ss;
	int here;

	sigaltstack(NULL, &ss);
	usr2_on_alt = on_alt(&here);
	usr2_flags = ss.ss_flags;
}

/* SIGUSR2 to this thread runs its handler on the alternate stack. */
static void check_delivery(void)
{
	/* With SS_AUTODISARM the kernel disables the stack while the handler runs on it. */
	int want = self->flags & SS_AUTODISARM ? SS_DISABLE : SS_ONSTACK;

	usr2_on_alt = usr2_flags = -1;
	pthread_kill(pthread_self(), SIGUSR2);
	case_check(usr2_on_alt == 1, "%s: the SIGUSR2 handler did not run on the alternate stack",
		   self->name);
	case_check(usr2_flags == want, "%s: the SIGUSR2 handler saw flags %#x, want %#x", self->name,
		   usr2_flags, want);
	check_alt("after a handler", 0);
}

/* Runs on the alternate stack of "onstack" and stays there until the checks begin. */
static void on_usr1(int sig)
{
	volatile unsigned long canary = 0x5ca1ab1edeadbeefUL;

	if (!on_alt((const void *)&canary))
		case_fail("onstack: the SIGUSR1 handler is not on the alternate stack");
	in_handler = 1;
	while (!go)
		case_sleep_ms(10);
	if (case_sabotage("onstack-canary"))
		canary = 0;
	check_alt("inside the handler", SS_ONSTACK);
	case_check(canary == 0x5ca1ab1edeadbeefUL, "onstack: canary on the alternate stack is %#lx",
		   canary);
}

static void *thread_main(void *arg)
{
	struct alt *a = arg;

	case_block_term(NULL);
	set_alt(a);
	a->set_up = 1;
	if (a == &alts[1])
		pthread_kill(pthread_self(), SIGUSR1);	/* returns only once go is set */
	while (!go)
		case_sleep_ms(10);
	if (a == &alts[2] && case_sabotage("disarm-flags"))
		sigaltstack(&(stack_t){ .ss_sp = a->sp, .ss_size = a->size }, NULL);
	check_alt("after the restore", 0);
	check_delivery();
	return NULL;
}

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa = { .sa_handler = fn, .sa_flags = SA_ONSTACK | SA_RESTART };

	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL))
		case_die("sigaction(%d): %m", sig);
}

int main(int argc, char **argv)
{
	case_init(argc, argv);
	handle(SIGUSR1, on_usr1);
	handle(SIGUSR2, on_usr2);
	set_alt(&alts[0]);
	for (int i = 1; i < 3; i++)
		if (pthread_create(&alts[i].th, NULL, thread_main, &alts[i]))
			case_die("pthread_create");
	while (!alts[2].set_up || !in_handler)
		case_sleep_ms(5);
	case_ready_wait();

	if (case_sabotage("main-size"))
		sigaltstack(&(stack_t){ .ss_sp = alts[0].sp, .ss_size = 32768 }, NULL);
	check_alt("after the restore", 0);
	check_delivery();
	go = 1;
	for (int i = 1; i < 3; i++)
		pthread_join(alts[i].th, NULL);
	case_finish();
}
