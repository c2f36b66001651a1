/*
 * crest check: probes, on this kernel, each interface crest relies on and says in plain
 * words what is there. Probes only ask; they change nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "arch/arch.h"
#include "cli/opts.h"
#include "util/kernel-compat.h"
#include "util/util.h"

struct probe {
	const char *name;
	const char *why;		/* what crest uses it for */
	bool required;
	bool (*run)(char *detail, size_t len);
};

static bool probe_pagemap_scan(char *detail, size_t len)
{
	struct page_region vec[4];
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .start = (uint64_t)detail & ~4095UL,
		.end = ((uint64_t)detail & ~4095UL) + 4096, .vec = (uint64_t)vec, .vec_len = 4,
		.category_anyof_mask = PAGE_IS_PRESENT, .return_mask = PAGE_IS_PRESENT,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	long n = fd < 0 ? -1 : ioctl(fd, PAGEMAP_SCAN, &arg);

	if (n < 0)
		snprintf(detail, len, "%s", strerror(errno));
	safe_close(fd);
	return n >= 0;
}

static bool probe_uffd_wp_async(char *detail, size_t len)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED };
	bool ok = fd >= 0 && !ioctl(fd, UFFDIO_API, &api);

	if (!ok)
		snprintf(detail, len, "%s", strerror(errno));
	safe_close(fd);
	return ok;
}

static bool probe_pidfd_getfd(char *detail, size_t len)
{
	int pidfd = sys_pidfd_open(getpid(), 0);
	int fd = pidfd < 0 ? -1 : sys_pidfd_getfd(pidfd, pidfd, 0);

	if (fd < 0)
		snprintf(detail, len, "%s", strerror(errno));
	safe_close(fd);
	safe_close(pidfd);
	return fd >= 0;
}

static bool probe_kcmp(char *detail, size_t len)
{
	int ok = sys_kcmp(getpid(), getpid(), KCMP_FILE, 1, 1) == 0;

	if (!ok)
		snprintf(detail, len, "%s", strerror(errno));
	return ok;
}

static bool probe_vm_readv(char *detail, size_t len)
{
	char src[8] = "crest", dst[8] = "";
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };
	bool ok = process_vm_readv(getpid(), &l, 1, &r, 1, 0) == sizeof(src);

	if (!ok)
		snprintf(detail, len, "%s", strerror(errno));
	return ok;
}

static bool probe_children(char *detail, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", getpid());
	if (!access(path, R_OK))
		return true;
	snprintf(detail, len, "%s (kernel without CONFIG_PROC_CHILDREN)", strerror(errno));
	return false;
}

static bool probe_map_files(char *detail, size_t len)
{
	char path[64];
	void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int fd;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (long)p, (long)p + 4096);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		snprintf(detail, len, "%s", strerror(errno));
	safe_close(fd);
	munmap(p, 4096);
	return fd >= 0;
}

static bool has_cap(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1U << (cap % 32));
}

static bool probe_checkpoint_cap(char *detail, size_t len)
{
	if (has_cap(40 /* CAP_CHECKPOINT_RESTORE */) || has_cap(CAP_SYS_ADMIN))
		return true;
	snprintf(detail, len, "run as root or with CAP_CHECKPOINT_RESTORE");
	return false;
}

static bool probe_sys_resource(char *detail, size_t len)
{
	if (has_cap(CAP_SYS_RESOURCE))
		return true;
	snprintf(detail, len, "absent: pipes above pipe-max-size and raised rlimits cannot be restored");
	return false;
}

static bool probe_timens(char *detail, size_t len)
{
	if (!access("/proc/self/ns/time", F_OK))
		return true;
	snprintf(detail, len, "%s", strerror(errno));
	return false;
}

/*
 * msgrcv(MSG_COPY) exists only with CONFIG_CHECKPOINT_RESTORE (ENOSYS without it); asked of
 * an id that cannot exist, it answers EINVAL and touches no queue.
 */
static bool probe_msg_copy(char *detail, size_t len)
{
	long buf[2];

	if (msgrcv(-1, buf, sizeof(buf[1]), 0, IPC_NOWAIT | MSG_COPY) < 0 && errno == ENOSYS) {
		snprintf(detail, len, "absent: SysV message queues cannot be saved");
		return false;
	}
	return true;
}

static const struct probe probes[] = {
	{ "process_vm_readv", "reading memory of stopped tasks", true, probe_vm_readv },
	{ "PAGEMAP_SCAN", "finding the pages worth saving", true, probe_pagemap_scan },
	{ "pidfd_getfd", "copying descriptors of other processes", true, probe_pidfd_getfd },
	{ "kcmp", "finding shared file descriptions", true, probe_kcmp },
	{ "/proc/PID/task/TID/children", "walking the process tree", true, probe_children },
	{ "/proc/PID/map_files", "shared memory contents", true, probe_map_files },
	{ "CAP_CHECKPOINT_RESTORE", "restoring PIDs (clone3 set_tid)", true, probe_checkpoint_cap },
	{ "userfaultfd WP_ASYNC", "dirty tracking for incremental dumps", false, probe_uffd_wp_async },
	{ "time namespaces", "keeping clocks continuous", false, probe_timens },
	{ "msgrcv MSG_COPY", "reading SysV messages without taking them", false, probe_msg_copy },
	{ "CAP_SYS_RESOURCE", "raising limits past the system's", false, probe_sys_resource },
};

int cmd_check(const struct crest_opts *opts)
{
	struct utsname u;
	char cpu[256] = "";
	int missing = 0;

	uname(&u);
	arch_describe_cpu(cpu, sizeof(cpu));
	printf("kernel: %s %s\ncpu: %s\n", u.release, u.machine, cpu);
	for (size_t i = 0; i < ARRAY_SIZE(probes); i++) {
		char detail[160] = "";
		bool ok = probes[i].run(detail, sizeof(detail));

		printf("%-28s %-8s %s%s%s\n", probes[i].name, ok ? "yes" : "no", probes[i].why,
		       *detail ? ": " : "", detail);
		if (!ok && probes[i].required)
			missing++;
	}
	if (missing)
		printf("%d required feature(s) missing: crest cannot work here.\n", missing);
	else
		printf("Looks good.\n");
	return missing ? 1 : 0;
}
