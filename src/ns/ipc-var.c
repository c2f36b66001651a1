/*
 * "sysctl": the limits of an ipc namespace. Each ipc namespace has its own copy of these
 * sysctls (ipc/ipc_sysctl.c and ipc/mq_sysctl.c since 5.x set them per namespace), starting
 * from the defaults, so a value the tree set inside would silently fall back to the default.
 */
#define LOG_PREFIX "ns/ipc-var: "
#include "ns/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

/*
 * Every per-namespace sysctl but the *_next_id ones (those steer object creation, and the
 * restore uses them itself). shm_rmid_forced is written last of all: with 1 it removes at once
 * every segment nobody attaches whose creator is gone.
 */
static const char *const ipc_vars[] = {
	"kernel/shmmax", "kernel/shmall", "kernel/shmmni",
	"kernel/msgmax", "kernel/msgmnb", "kernel/msgmni",
	"kernel/sem",
	"fs/mqueue/queues_max", "fs/mqueue/msg_max", "fs/mqueue/msgsize_max",
	"fs/mqueue/msg_default", "fs/mqueue/msgsize_default",
	"kernel/shm_rmid_forced",
};

static int var_dump_one(struct img *img, const char *name)
{
	IpcVarEntry e = IPC_VAR_ENTRY__INIT;
	char path[128], *value;
	int err;

	snprintf(path, sizeof(path), "/proc/sys/%s", name);
	value = read_file_at(AT_FDCWD, path, NULL);
	if (!value) {
		/* A kernel without the sysctl (or without POSIX mqueues) has nothing to save. */
		if (errno == ENOENT)
			return 0;
		return pr_errno(-errno, "cannot read %s of the tree's ipc namespace", path);
	}
	value[strcspn(value, "\n")] = '\0';
	e.name = (char *)name;
	e.value = value;
	err = img_write_msg(img, &e.base);
	free(value);
	return err;
}

static int var_dump(struct img_dir *dir, pid_t root)
{
	struct img *img = img_create(dir, IMG_MAGIC_IPC_VAR, "ipc-var.img");
	int err = 0;

	if (!img)
		return -errno;
	for (size_t i = 0; !err && i < ARRAY_SIZE(ipc_vars); i++)
		err = var_dump_one(img, ipc_vars[i]);
	return err ? (img_close(img), err) : img_close(img);
}

/* Only names crest itself writes are accepted: the image must not choose any sysctl. */
static bool var_known(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(ipc_vars); i++)
		if (!strcmp(name, ipc_vars[i]))
			return true;
	return false;
}

static int var_restore(struct img_dir *dir)
{
	struct img *img = img_open(dir, IMG_MAGIC_IPC_VAR, "ipc-var.img");
	IpcVarEntry **vars = NULL;
	size_t nr = 0;
	int err;

	if (!img)
		return errno == ENOENT ? 0 : -errno;
	err = img_read_rest(img, ipc_var_entry, &vars, &nr);
	img_close(img);
	for (size_t i = 0; !err && i < nr; i++) {
		if (!var_known(vars[i]->name))
			err = pr_errno(-EINVAL, "ipc-var.img: %s is not a sysctl of an ipc namespace",
				       vars[i]->name);
		else
			err = ipc_write_sysctl(vars[i]->name, vars[i]->value);
	}
	img_free_all((ProtobufCMessage **)vars, nr);
	return err;
}

const struct ipc_kind ipc_kind_var = {
	.name = "sysctl",
	.dump = var_dump,
	.restore = var_restore,
};
