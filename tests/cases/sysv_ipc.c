/*
 * sysv_ipc: SysV IPC objects of the tree's own ipc namespace (the root makes it with
 * unshare(CLONE_NEWIPC) before it forks) come back with their ids, keys, owners, modes and
 * contents, and every attach comes back where it was, sharing the segment.
 *
 *   A  key 0x5ee1, 10000 bytes, mode 0640: attached by the root before the fork, so at the
 *      same address in the child; patterned. After SIGTERM the child writes a marker that the
 *      parent must then see through its own attach: one segment, not two copies.
 *   B  private, 8192 bytes, attached by the root only, then IPC_RMID: SHM_DEST, key 0,
 *      still attached (nattch 1) and readable.
 *   C  key 0x5ee3, 1 MiB, data only in pages 0 and 100: the child attaches it SHM_RDONLY; the
 *      root attaches it too and unmaps its first page (an attach that starts at offset 4096).
 *   D  key 0x5ee6, 4096 bytes, owner 1234:5678, mode 0604: the child attaches it
 *      SHM_RDONLY | SHM_EXEC, which must come back as an "r-xs" mapping.
 *   sem  key 0x5ee4: 3 semaphores 1, 7, 0; owner 1234:5678, mode 0660.
 *   msg  key 0x5ee5: messages (3 "first") (1 "second") (3 "third") (2 ""), qbytes 4000.
 *   kernel.msgmnb of the namespace set to 12345.
 * Ids are chosen with kernel.*_next_id (A 4242, B 33000, D 100, sem 777, msg 65539), so that
 * a restore that created the objects one after another would give them other ids.
 */
#include "case.h"

#include <sched.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define SIZE_A 10000
#define SIZE_B 8192
#define SIZE_C (1 << 20)
#define SIZE_D 4096
#define MARK_OFF 5000

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

struct msgbuf_ {
	long mtype;
	char mtext[64];
};

static const struct { long type; const char *text; } msgs[] = {
	{ 3, "first" }, { 1, "second" }, { 3, "third" }, { 2, "" },
};
#define NMSGS (sizeof(msgs) / sizeof(msgs[0]))

static int id_a, id_b, id_c, id_d, id_sem, id_msg;
static char *at_a, *at_b, *at_c, *at_c_part, *at_d;

static char pattern(size_t off, int seed)
{
	return (char)((off * 7 + seed * 13) % 251 + 1);
}

static void fill(char *p, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i, seed);
}

static bool same(const char *p, size_t len, int seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(i, seed))
			return false;
	return true;
}

static void write_sysctl(const char *path, const char *value);

/* next_id: the id it must get (kernel.shm_next_id), so that ids are not simply 0, 1, 2 ... */
static int make_shm(key_t key, size_t size, int mode, const char *next_id)
{
	int id;

	if (next_id)
		write_sysctl("/proc/sys/kernel/shm_next_id", next_id);
	id = shmget(key, size, IPC_CREAT | IPC_EXCL | mode);

	if (id < 0)
		case_die("shmget %#x: %m", key);
	return id;
}

static void *attach(int id, int flags)
{
	void *p = shmat(id, NULL, flags);

	if (p == (void *)-1)
		case_die("shmat %d: %m", id);
	return p;
}

static void write_sysctl(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, value, strlen(value)) < 0)
		case_die("%s: %m", path);
	close(fd);
}

static void setup_shm(void)
{
	struct shmid_ds ds;
	char *d;

	id_a = make_shm(0x5ee1, SIZE_A, 0640, "4242");
	at_a = attach(id_a, 0);
	fill(at_a, SIZE_A, 1);
	id_c = make_shm(0x5ee3, SIZE_C, 0600, NULL);
	d = attach(id_c, 0);
	fill(d, 4096, 3);
	fill(d + 100 * 4096, 4096, 4);
	shmdt(d);
	id_d = make_shm(0x5ee6, SIZE_D, 0600, "100");
	d = attach(id_d, 0);
	fill(d, SIZE_D, 6);
	shmdt(d);
	memset(&ds, 0, sizeof(ds));
	ds.shm_perm.uid = 1234;
	ds.shm_perm.gid = 5678;
	ds.shm_perm.mode = 0604;
	if (shmctl(id_d, IPC_SET, &ds))
		case_die("IPC_SET shm D: %m");
}

static void setup_sem_msg(void)
{
	unsigned short vals[3] = { 1, 7, 0 };
	struct semid_ds sds = { 0 };
	struct msqid_ds mds;

	write_sysctl("/proc/sys/kernel/sem_next_id", "777");
	id_sem = semget(0x5ee4, 3, IPC_CREAT | IPC_EXCL | 0600);
	if (id_sem < 0 || semctl(id_sem, 0, SETALL, (union semun){ .array = vals }))
		case_die("semaphores: %m");
	sds.sem_perm.uid = 1234;
	sds.sem_perm.gid = 5678;
	sds.sem_perm.mode = 0660;
	if (semctl(id_sem, 0, IPC_SET, (union semun){ .buf = &sds }))
		case_die("IPC_SET sem: %m");
	write_sysctl("/proc/sys/kernel/msg_next_id", "65539");
	id_msg = msgget(0x5ee5, IPC_CREAT | IPC_EXCL | 0620);
	if (id_msg < 0 || msgctl(id_msg, IPC_STAT, &mds))
		case_die("msgget: %m");
	mds.msg_qbytes = 4000;
	if (msgctl(id_msg, IPC_SET, &mds))
		case_die("IPC_SET msg: %m");
	for (size_t i = 0; i < NMSGS; i++) {
		struct msgbuf_ m = { msgs[i].type, "" };

		strcpy(m.mtext, msgs[i].text);
		if (msgsnd(id_msg, &m, strlen(msgs[i].text), IPC_NOWAIT))
			case_die("msgsnd: %m");
	}
	write_sysctl("/proc/sys/kernel/msgmnb", "12345");
}

/* B is attached by the root only, after the fork, then removed while attached. */
static void setup_removed(void)
{
	at_c_part = attach(id_c, 0);
	if (munmap(at_c_part, 4096))
		case_die("munmap of the first page of shm C: %m");
	id_b = make_shm(IPC_PRIVATE, SIZE_B, 0600, "33000");
	at_b = attach(id_b, 0);
	fill(at_b, SIZE_B, 2);
	if (shmctl(id_b, IPC_RMID, NULL))
		case_die("IPC_RMID: %m");
}

static struct shmid_ds shm_stat(int id, const char *name)
{
	struct shmid_ds ds;

	memset(&ds, 0, sizeof(ds));
	if (shmctl(id, IPC_STAT, &ds))
		case_fail("shm %s (id %d): IPC_STAT: %m", name, id);
	return ds;
}

static void check_shm(void)
{
	struct shmid_ds a = shm_stat(id_a, "A"), b = shm_stat(id_b, "B"), d = shm_stat(id_d, "D");
	char *p;

	case_check(shmget(0x5ee1, 0, 0) == id_a, "shm A: key 0x5ee1 gives id %d, want %d",
		   shmget(0x5ee1, 0, 0), id_a);
	case_check(a.shm_segsz == SIZE_A && (a.shm_perm.mode & 0777) == 0640,
		   "shm A: size %zu mode %o", a.shm_segsz, a.shm_perm.mode);
	case_check(a.shm_nattch == 2, "shm A: %lu attaches, want 2", a.shm_nattch);
	case_check(same(at_a, SIZE_A, 1), "shm A: contents differ");
	case_check(b.shm_perm.mode & SHM_DEST, "shm B: not marked removed (mode %o)", b.shm_perm.mode);
	case_check(b.shm_nattch == 1 && b.shm_perm.__key == 0, "shm B: nattch %lu key %#x",
		   b.shm_nattch, b.shm_perm.__key);
	case_check(same(at_b, SIZE_B, 2), "shm B: contents differ");
	case_check(same(at_c_part + 100 * 4096, 4096, 4), "shm C, attached from its page 1: contents differ");
	case_check(d.shm_perm.uid == 1234 && d.shm_perm.gid == 5678 &&
		   (d.shm_perm.mode & 0777) == 0604 && d.shm_nattch == 1,
		   "shm D: owner %u:%u mode %o nattch %lu", d.shm_perm.uid, d.shm_perm.gid,
		   d.shm_perm.mode, d.shm_nattch);
	p = shmat(id_d, NULL, SHM_RDONLY);
	case_check(p != (void *)-1 && same(p, SIZE_D, 6), "shm D: contents differ");
	if (p != (void *)-1)
		shmdt(p);
}

static void check_sem_msg(void)
{
	unsigned short vals[3] = { 9, 9, 9 };
	struct semid_ds sds;
	struct msqid_ds mds;
	char buf[32] = "";
	int fd;

	case_check(semget(0x5ee4, 0, 0) == id_sem, "sem: key 0x5ee4 gives another id");
	semctl(id_sem, 0, GETALL, (union semun){ .array = vals });
	case_check(vals[0] == 1 && vals[1] == 7 && vals[2] == 0, "sem: values %u %u %u, want 1 7 0",
		   vals[0], vals[1], vals[2]);
	semctl(id_sem, 0, IPC_STAT, (union semun){ .buf = &sds });
	case_check(sds.sem_perm.uid == 1234 && sds.sem_perm.gid == 5678 &&
		   (sds.sem_perm.mode & 0777) == 0660 && sds.sem_nsems == 3,
		   "sem: owner %u:%u mode %o nsems %lu", sds.sem_perm.uid, sds.sem_perm.gid,
		   sds.sem_perm.mode, sds.sem_nsems);
	case_check(msgget(0x5ee5, 0) == id_msg, "msg: key 0x5ee5 gives another id");
	msgctl(id_msg, IPC_STAT, &mds);
	case_check(mds.msg_qnum == NMSGS && mds.msg_qbytes == 4000 && (mds.msg_perm.mode & 0777) == 0620,
		   "msg: %lu messages, qbytes %lu, mode %o", mds.msg_qnum, mds.msg_qbytes,
		   mds.msg_perm.mode);
	for (size_t i = 0; i < NMSGS; i++) {
		struct msgbuf_ m = { 0, "" };
		ssize_t n = msgrcv(id_msg, &m, sizeof(m.mtext), 0, IPC_NOWAIT);

		case_check(n == (ssize_t)strlen(msgs[i].text) && m.mtype == msgs[i].type &&
			   !memcmp(m.mtext, msgs[i].text, n > 0 ? n : 0),
			   "msg %zu: type %ld \"%.*s\", want type %ld \"%s\"", i, m.mtype,
			   (int)(n > 0 ? n : 0), m.mtext, msgs[i].type, msgs[i].text);
	}
	fd = open("/proc/sys/kernel/msgmnb", O_RDONLY);
	if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = '\0';
	close(fd);
	case_check(atoi(buf) == 12345, "kernel.msgmnb of the namespace is %d, want 12345", atoi(buf));
}

static void sabotage(void)
{
	if (case_sabotage("shm_contents"))
		at_a[100] ^= 1;
	if (case_sabotage("shm_removed"))
		shmctl(id_a, IPC_RMID, NULL);
	if (case_sabotage("sem_values"))
		semctl(id_sem, 1, SETVAL, (union semun){ .val = 3 });
	if (case_sabotage("msg_order")) {
		struct msgbuf_ m;

		msgrcv(id_msg, &m, sizeof(m.mtext), 0, IPC_NOWAIT);
		msgsnd(id_msg, &m, strlen(msgs[0].text), IPC_NOWAIT);
	}
}

/* The protection of our mapping at addr, as /proc/self/maps shows it ("r-xs"). */
static void maps_perms(const void *addr, char *perms)
{
	char line[512], want[32];
	FILE *f = fopen("/proc/self/maps", "re");

	strcpy(perms, "none");
	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want)))
			sscanf(line, "%*s %4s", perms);
	if (f)
		fclose(f);
}

/* The child: A inherited at the same address, C attached read-only, D read-only and exec. */
static void child_setup(void)
{
	at_c = attach(id_c, SHM_RDONLY);
	at_d = attach(id_d, SHM_RDONLY | SHM_EXEC);
}

static void child(void)
{
	struct shmid_ds c;
	char perms[8];

	case_wait();
	c = shm_stat(id_c, "C");
	case_check(c.shm_nattch == 2, "shm C: %lu attaches, want 2", c.shm_nattch);
	case_check(same(at_c, 4096, 3) && same(at_c + 100 * 4096, 4096, 4),
		   "shm C: contents differ");
	case_check(at_c[50 * 4096] == 0, "shm C: a page never written is not zero");
	case_check(same(at_a, SIZE_A, 1), "shm A in the child: contents differ");
	maps_perms(at_c, perms);
	case_check(!strcmp(perms, "r--s"), "shm C: mapped %s, want r--s", perms);
	maps_perms(at_d, perms);
	case_check(!strcmp(perms, "r-xs"), "shm D: mapped %s, want r-xs", perms);
	case_check(same(at_d, SIZE_D, 6), "shm D in the child: contents differ");
	case_check(mprotect(at_d, SIZE_D, PROT_READ | PROT_WRITE) != 0,
		   "shm D: mprotect to read-write works: attached writable, not SHM_RDONLY");
	memcpy(at_a + MARK_OFF, "child was here", 14);
	case_child_exit();
}

int main(int argc, char **argv)
{
	pid_t pid;

	case_init(argc, argv);
	if (unshare(CLONE_NEWIPC))
		case_die("unshare(CLONE_NEWIPC): %m");
	setup_shm();
	setup_sem_msg();
	pid = case_fork_after(child_setup, child, "attach shm C");
	setup_removed();
	case_ready_wait();
	sabotage();
	check_shm();
	check_sem_msg();
	case_check_child(pid, "child");
	case_check(!memcmp(at_a + MARK_OFF, "child was here", 14),
		   "shm A: the child's write is not seen by the parent: not one shared segment");
	if (!case_nfail)
		case_say("PASS");
	return case_nfail ? 1 : 0;
}
