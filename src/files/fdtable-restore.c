/*
 * The fd tables at restore: reads files.img and every fdinfo-<pid>.img, and decides which
 * process creates each description (the first one, in tree order, that holds it or anything
 * of its group).
 */
#define LOG_PREFIX "files: "
#include "files/files.h"
#include "files/fown.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/img.h"
#include "util/log.h"
#include "util/util.h"

struct rst_file {
	FileEntry *fe;
	const struct fd_kind *kind;
	ProtobufCMessage *rec;	/* decoded payload */
	pid_t owner;
	pid_t first_holder;	/* the first process (tree order) with an fd for it */
	bool carried;		/* in flight in another group's description (fd_kind.carried) */
};

struct rst_fdtable {
	pid_t pid;
	FdEntry **fds;
	size_t nr;
};

struct files_restore {
	struct img_dir *dir;
	struct rst_file *files;	/* index = id - 1 */
	size_t nr_files;
	struct rst_fdtable *tables;
	size_t nr_tables;
	int max_fd;
	uint32_t *order;	/* ids in the order of creation (files_restore_entry_id) */
};

static int decode_entry(struct rst_file *f)
{
	f->kind = fd_kind_by_name(f->fe->kind);
	if (!f->kind) {
		pr_err("files.img: entry %u has unknown kind '%s'", f->fe->id, f->fe->kind);
		return -EINVAL;
	}
	f->rec = protobuf_c_message_unpack(f->kind->desc, NULL, f->fe->payload.len,
					   f->fe->payload.data);
	if (!f->rec) {
		pr_err("files.img: entry %u (%s): undecodable record", f->fe->id, f->fe->kind);
		return -EINVAL;
	}
	return 0;
}

static int read_files(struct files_restore *fr)
{
	struct img *img = img_open(fr->dir, IMG_MAGIC_FILES, "files.img");
	FileEntry **entries = NULL;
	int ret;

	if (!img)
		return errno == ENOENT ? pr_errno(-ENOENT, "files.img: missing from the image") : -errno;
	ret = img_read_rest(img, file_entry, &entries, &fr->nr_files);
	img_close(img);
	if (ret)
		return ret;
	fr->files = xzalloc(fr->nr_files * sizeof(*fr->files) + 1);
	for (size_t i = 0; fr->files && i < fr->nr_files; i++)
		fr->files[i].fe = entries[i];
	free(entries);
	if (!fr->files)
		return -ENOMEM;
	for (size_t i = 0; !ret && i < fr->nr_files; i++) {
		if (fr->files[i].fe->id != i + 1)
			ret = pr_errno(-EINVAL, "files.img: entry %zu has id %u (ids must run from 1)",
				       i + 1, fr->files[i].fe->id);
		else
			ret = decode_entry(&fr->files[i]);
	}
	return ret;
}

static int read_fdtable(struct files_restore *fr, struct rst_fdtable *t)
{
	struct img *img = img_open(fr->dir, IMG_MAGIC_FDINFO, "fdinfo-%d.img", t->pid);
	int ret;

	if (!img)
		return errno == ENOENT ? pr_errno(-ENOENT, "fdinfo-%d.img: missing from the image", t->pid) : -errno;
	ret = img_read_rest(img, fd_entry, &t->fds, &t->nr);
	img_close(img);
	for (size_t i = 0; !ret && i < t->nr; i++) {
		if (!t->fds[i]->file_id || t->fds[i]->file_id > fr->nr_files)
			ret = pr_errno(-EINVAL, "fdinfo-%d.img: fd %u refers to file %u, not in files.img",
				       t->pid, t->fds[i]->fd, t->fds[i]->file_id);
		fr->max_fd = MAX(fr->max_fd, (int)t->fds[i]->fd);
	}
	return ret;
}

static uint64_t group_of(const struct rst_file *f)
{
	return f->kind->group ? f->kind->group(f->rec) : 0;
}

/* The owner of an entry is the first process (tree order) holding it or its group. */
static void assign_owners(struct files_restore *fr)
{
	for (size_t t = 0; t < fr->nr_tables; t++) {
		for (size_t i = 0; i < fr->tables[t].nr; i++) {
			struct rst_file *f = &fr->files[fr->tables[t].fds[i]->file_id - 1];
			uint64_t g = group_of(f);

			if (!f->first_holder)
				f->first_holder = fr->tables[t].pid;
			if (f->owner)
				continue;
			f->owner = fr->tables[t].pid;
			for (size_t j = 0; g && j < fr->nr_files; j++)
				if (!fr->files[j].owner && fr->files[j].kind == f->kind &&
				    group_of(&fr->files[j]) == g)
					fr->files[j].owner = f->owner;
		}
	}
}

/* For add_carried: the carrying entry, and the first bad id met. */
struct carry {
	struct files_restore *fr;
	struct rst_file *by;
	uint32_t bad_id;
};

static bool same_group(const struct rst_file *a, const struct rst_file *b)
{
	return a->kind == b->kind && group_of(a) && group_of(a) == group_of(b);
}

/*
 * Entry id is in flight in c->by's description: c->by's owner creates it (and its group),
 * whether or not a process holds it, so that it exists when c->by's group is made.
 */
static void add_carried(void *arg, uint32_t id)
{
	struct carry *c = arg;
	struct files_restore *fr = c->fr;
	struct rst_file *f;

	if (!id || id > fr->nr_files) {
		c->bad_id = c->bad_id ? c->bad_id : (id ? id : UINT32_MAX);
		return;
	}
	f = &fr->files[id - 1];
	if (same_group(f, c->by))
		return;
	f->carried = true;
	for (size_t j = 0; j < fr->nr_files; j++)
		if (&fr->files[j] == f || same_group(&fr->files[j], f))
			fr->files[j].owner = c->by->owner;
}

/* Owners of the entries in flight, and the order of creation: those entries come first. */
static int plan_carried(struct files_restore *fr)
{
	size_t n = 0;

	for (size_t i = 0; i < fr->nr_files; i++) {
		struct carry c = { fr, &fr->files[i], 0 };

		if (!c.by->kind->carried || !c.by->owner)
			continue;
		c.by->kind->carried(c.by->rec, add_carried, &c);
		if (c.bad_id) {
			pr_err("files.img: entry %u (%s) carries file %u, not in files.img", c.by->fe->id,
			       c.by->fe->kind, c.bad_id);
			return -EINVAL;
		}
	}
	fr->order = xmalloc(fr->nr_files * sizeof(*fr->order) + 1);
	if (!fr->order)
		return -ENOMEM;
	for (size_t i = 0; i < fr->nr_files; i++)
		if (fr->files[i].carried && !fr->files[i].kind->carried)
			fr->order[n++] = i + 1;
	for (size_t i = 0; i < fr->nr_files; i++)
		if (!fr->files[i].carried || fr->files[i].kind->carried)
			fr->order[n++] = i + 1;
	return 0;
}

int files_restore_read(struct img_dir *dir, const pid_t *pids, size_t nr_pids,
		       struct files_restore **ret)
{
	struct files_restore *fr = xzalloc(sizeof(*fr));
	int err;

	if (!fr)
		return -ENOMEM;
	fr->dir = dir;
	fr->max_fd = -1;
	fr->tables = xzalloc(nr_pids * sizeof(*fr->tables) + 1);
	err = fr->tables ? read_files(fr) : -ENOMEM;
	for (size_t i = 0; !err && i < nr_pids; i++) {
		fr->tables[i].pid = pids[i];
		fr->nr_tables++;
		err = read_fdtable(fr, &fr->tables[i]);
	}
	if (!err) {
		assign_owners(fr);
		err = plan_carried(fr);
	}
	if (err) {
		files_restore_free(fr);
		return err;
	}
	*ret = fr;
	return 0;
}

int files_restore_fds(struct files_restore *fr, pid_t pid, FdEntry ***fds, size_t *nr)
{
	for (size_t i = 0; i < fr->nr_tables; i++) {
		if (fr->tables[i].pid == pid) {
			*fds = fr->tables[i].fds;
			*nr = fr->tables[i].nr;
			return 0;
		}
	}
	return -ENOENT;
}

int files_restore_max_fd(const struct files_restore *fr)
{
	return fr->max_fd;
}

FileEntry *files_restore_entry(struct files_restore *fr, uint32_t id)
{
	return id && id <= fr->nr_files ? fr->files[id - 1].fe : NULL;
}

pid_t files_restore_owner(struct files_restore *fr, uint32_t id)
{
	return id && id <= fr->nr_files ? fr->files[id - 1].owner : 0;
}

size_t files_restore_nr_entries(const struct files_restore *fr)
{
	return fr->nr_files;
}

uint32_t files_restore_shmem_entry(const struct files_restore *fr, uint64_t ino)
{
	for (size_t i = 0; ino && i < fr->nr_files; i++) {
		const struct rst_file *f = &fr->files[i];

		if (f->kind->shmem_ino && f->kind->shmem_ino(f->rec) == ino)
			return f->fe->id;
	}
	return 0;
}

uint32_t files_restore_entry_id(const struct files_restore *fr, size_t idx)
{
	return fr->order[idx];
}

int files_restore_open(struct files_restore *fr, uint32_t id, pid_t pid, const struct crest_opts *opts,
		       int (*entry_fd)(void *arg, uint32_t id), void *arg)
{
	struct rst_file *f = &fr->files[id - 1];
	struct fd_open_arg a = { .pid = pid, .id = id, .dir = fr->dir, .opts = opts,
				 .entry_fd = entry_fd, .entry_arg = arg };
	int fd = f->kind->open(&a, f->rec), ret;

	/*
	 * The owner and signal, for kinds that leave them to us. The kind already set O_ASYNC
	 * with its status flags: the owner is looked up when a signal is sent, so setting it
	 * after O_ASYNC loses nothing (nothing happens on the new description in between).
	 */
	if (fd < 0 || !f->fe->fown)
		return fd;
	ret = fown_restore(fd, f->fe->fown, 0, pid, f->fe->kind);
	if (ret < 0)
		close(fd);
	return ret;
}

static bool kind_used(const struct files_restore *fr, const struct fd_kind *kind)
{
	for (size_t i = 0; i < fr->nr_files; i++)
		if (fr->files[i].kind == kind)
			return true;
	return false;
}

int files_restore_prepare(struct files_restore *fr)
{
	int ret = 0;

	for (size_t k = 0; !ret && fd_kinds[k]; k++)
		if (fd_kinds[k]->restore_prepare && kind_used(fr, fd_kinds[k]))
			ret = fd_kinds[k]->restore_prepare(fr->dir);
	return ret;
}

int files_restore_session(struct files_restore *fr, pid_t pid)
{
	int ret = 0;

	for (size_t k = 0; !ret && fd_kinds[k]; k++)
		if (fd_kinds[k]->restore_session && kind_used(fr, fd_kinds[k]))
			ret = fd_kinds[k]->restore_session(pid);
	return ret;
}

void files_restore_release(struct files_restore *fr)
{
	for (size_t k = 0; fd_kinds[k]; k++)
		if (fd_kinds[k]->restore_release && kind_used(fr, fd_kinds[k]))
			fd_kinds[k]->restore_release();
}

/*
 * The kinds switched O_ASYNC on at a service fd, and ->fasync (fasync_helper()) noted that
 * number: the signal's si_fd would name it. Switching O_ASYNC off and on again at the fd's
 * final number makes si_fd what the target had, as far as the image tells (the lowest fd of
 * the first process holding the description). Files without ->fasync ignore both calls. A
 * tty's ->fasync makes the tty's group the owner again (__tty_fasync()): the owner is put back.
 */
static int rearm_async(int fd, pid_t pid, const char *kind)
{
	int fl = fcntl(fd, F_GETFL);
	struct f_owner_ex owner;

	if (fl < 0 || !(fl & O_ASYNC))
		return 0;
	if (fcntl(fd, F_GETOWN_EX, &owner) || fcntl(fd, F_SETFL, fl & ~O_ASYNC) ||
	    fcntl(fd, F_SETFL, fl) || fcntl(fd, F_SETOWN_EX, &owner))
		return pr_errno(-errno, "pid %d fd %d (%s): cannot switch O_ASYNC on at its number",
				pid, fd, kind);
	return 0;
}

int files_restore_late(struct files_restore *fr, pid_t pid, const struct crest_opts *opts)
{
	FdEntry **fds;
	size_t nr;
	int ret = files_restore_fds(fr, pid, &fds, &nr);

	/* fds are sorted by number, so the first fd seen for an entry is its lowest. */
	for (size_t i = 0; !ret && i < nr; i++) {
		struct rst_file *f = &fr->files[fds[i]->file_id - 1];
		struct fd_open_arg a = { .pid = pid, .id = f->fe->id, .dir = fr->dir, .opts = opts };
		bool first = true;

		for (size_t j = 0; j < i; j++)
			first &= fds[j]->file_id != fds[i]->file_id;
		if (first && f->first_holder == pid)
			ret = rearm_async(fds[i]->fd, pid, f->fe->kind);
		if (!ret && first && f->kind->restore_late)
			ret = f->kind->restore_late(&a, f->rec, fds[i]->fd, f->owner == pid);
	}
	return ret;
}

void files_restore_free(struct files_restore *fr)
{
	if (!fr)
		return;
	for (size_t i = 0; i < fr->nr_files; i++) {
		if (fr->files[i].rec)
			protobuf_c_message_free_unpacked(fr->files[i].rec, NULL);
		file_entry__free_unpacked(fr->files[i].fe, NULL);
	}
	for (size_t t = 0; t < fr->nr_tables; t++) {
		for (size_t i = 0; i < fr->tables[t].nr; i++)
			fd_entry__free_unpacked(fr->tables[t].fds[i], NULL);
		free(fr->tables[t].fds);
	}
	free(fr->tables);
	free(fr->files);
	free(fr->order);
	free(fr);
}
