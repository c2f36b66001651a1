/*
 * Open files: the fd table of each process and one struct fd_kind per kind of descriptor.
 *
 * A file description (what open(2) creates) gets one file_entry in files.img however many
 * fds and processes share it; each process's fdinfo-<pid>.img maps its fd numbers to those
 * entries. At restore, exactly one process creates each description and the others take a
 * copy with pidfd_getfd, so sharing (one offset, one set of flags) survives.
 */
#ifndef CREST_FILES_FILES_H
#define CREST_FILES_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <protobuf-c/protobuf-c.h>

#include "fdinfo.pb-c.h"

struct img_dir;
struct crest_opts;

/* What a kind's dump gets to look at for one descriptor of a stopped process. */
struct fd_dump_arg {
	pid_t pid;
	int fd;
	int lfd;		/* our copy of the description (pidfd_getfd); -1 if none */
	const char *link;	/* readlink of /proc/PID/fd/N */
	const struct stat *st;	/* stat of the opened file */
	uint32_t flags;		/* file status flags (fdinfo "flags", without O_CLOEXEC) */
	uint64_t pos;		/* fdinfo "pos" */
	const char *fdinfo;	/* the whole of /proc/PID/fdinfo/N, for kind-specific lines */
	struct img_dir *dir;	/* for kinds that keep data of their own (pipe contents) */
	const struct crest_opts *opts;
	/*
	 * A description in flight (SCM_RIGHTS in a unix socket's queue) has no process: pid and
	 * fd are then crest's own and its copy, and via_pid/via_fd name the socket whose queue
	 * holds it (0/-1 otherwise). A kind that needs the process holding a description (an
	 * epoll's interest list names fds of one) refuses such a one, naming via_pid/via_fd.
	 */
	pid_t via_pid;
	int via_fd;
	/*
	 * For kinds whose queues carry descriptions: saves fd (a copy in crest, which the fd table
	 * keeps from then on, closed or not) as a file_entry like any other, or finds the entry of
	 * the description already saved, and puts its id in *ret_id. 0 or -errno after logging.
	 */
	int (*save_carried)(const struct fd_dump_arg *a, int fd, uint32_t *ret_id);
	struct files_dump *files;	/* save_carried's own */
};

/* What a kind's open gets at restore. */
struct fd_open_arg {
	pid_t pid;		/* the process creating the description */
	uint32_t id;		/* file_entry id */
	struct img_dir *dir;
	const struct crest_opts *opts;
	/*
	 * The descriptor (in this process, not to be closed) of entry id, which this process
	 * created before this one (see fd_kind.carried), or -1 after logging.
	 */
	int (*entry_fd)(void *arg, uint32_t id);
	void *entry_arg;
};

struct fd_kind {
	/* Stored in file_entry.kind; also the name `crest show` prints. */
	const char *name;
	/* The kind's own record type (file_entry.payload). */
	const ProtobufCMessageDescriptor *desc;
	/* True when the descriptor described by a is of this kind. */
	bool (*match)(const struct fd_dump_arg *a);
	/*
	 * Builds the record for a description seen for the first time. *ret is a message of
	 * type desc, freed by the caller with protobuf_c_message_free_unpacked(*ret, NULL)
	 * (so allocate it and its strings with malloc). Returns 0 or -errno after logging,
	 * naming pid and fd.
	 */
	int (*dump)(const struct fd_dump_arg *a, ProtobufCMessage **ret);
	/*
	 * Restore: entries with the same nonzero group are created by one process together
	 * (the two ends of one pipe). NULL or 0: the entry stands alone.
	 */
	uint64_t (*group)(const ProtobufCMessage *rec);
	/*
	 * Restore: creates the description and returns a new descriptor (any number,
	 * O_CLOEXEC), or -errno after logging what failed and for which file.
	 */
	int (*open)(const struct fd_open_arg *a, const ProtobufCMessage *rec);
	/*
	 * Restore, optional: runs in every process holding the description, once its whole fd
	 * table is installed (fd is this process's lowest fd number for it). For state that
	 * refers to other descriptors by number, such as an epoll's interest list. Only the
	 * owner (a->pid == owner) should change shared state.
	 */
	int (*restore_late)(const struct fd_open_arg *a, const ProtobufCMessage *rec, int fd,
			    bool owner);
	/*
	 * Dump: called once at the end, to flush kind-private images and forget kind-private
	 * state. complete is true after every process was dumped and files.img written (checks
	 * that need the whole tree, like unix peers, belong here); false after a failed dump,
	 * when only cleanup is wanted and the return value is ignored.
	 */
	int (*dump_finish)(struct img_dir *dir, bool complete);
	/*
	 * Restore, optional: the inode of the shared memory object this description opens when
	 * the tree also maps that object (a memfd), else 0. The memory code then uses this
	 * description's object for those mappings instead of creating one of its own.
	 */
	uint64_t (*shmem_ino)(const ProtobufCMessage *rec);
	/*
	 * True when the kind saves and restores the O_ASYNC owner and signal in its own record
	 * (fown.h), because they must be set at a point of its own open (before a reopen, after
	 * a tty's ->fasync). For every other kind the fd table does it (file_entry.fown), right
	 * after open().
	 */
	bool keeps_fown;
	/*
	 * Restore, optional, for kinds with an entry in the image: prepare runs in the controller
	 * before the first process is created, so that every process inherits what it makes;
	 * session in each process once its session and group are set up and before it forks its
	 * children (what they inherit then: a controlling terminal); release in the controller
	 * once the root exists, to let go of what prepare made. 0 or -errno after logging.
	 */
	int (*restore_prepare)(struct img_dir *dir);
	int (*restore_session)(pid_t pid);
	void (*restore_release)(void);
	/*
	 * Restore, optional: calls add for each entry that rec's description carries (the
	 * descriptors in flight in a unix socket's queue). The process creating rec's group
	 * creates those too, before any entry of the group (except carried entries of the group
	 * itself), and its open reaches them through fd_open_arg.entry_fd.
	 */
	void (*carried)(const ProtobufCMessage *rec, void (*add)(void *arg, uint32_t id), void *arg);
};

/*
 * The text right after line KEY ("\nname:") of an fdinfo (or other /proc) text, or NULL when
 * there is no such line. Kind-specific fdinfo lines all follow "pos:", hence the newline.
 */
const char *fdinfo_value(const char *fdinfo, const char *key);

/* The kinds, in match order (files/kinds.c). */
extern const struct fd_kind *const fd_kinds[];
const struct fd_kind *fd_kind_by_name(const char *name);
/* For `crest show`: the payload record type of a kind, or NULL. */
const ProtobufCMessageDescriptor *fd_kind_payload_desc(const char *kind);

/* ---- dump ---- */
struct files_dump;
int files_dump_open(struct img_dir *dir, const struct crest_opts *opts, struct files_dump **ret);
/* Dumps the fd table of pid (stopped) into fdinfo-<pid>.img and new descriptions into files.img. */
int files_dump_process(struct files_dump *fd, pid_t pid);
/* Writes files.img and whatever the kinds keep. */
int files_dump_finish(struct files_dump *fd);
void files_dump_free(struct files_dump *fd);

/* ---- restore ---- */
/* One description to create at restore, and the descriptors that refer to it. */
struct files_restore;
int files_restore_read(struct img_dir *dir, const pid_t *pids, size_t nr_pids,
		       struct files_restore **ret);
/* The fd table of pid as in the image. */
int files_restore_fds(struct files_restore *fr, pid_t pid, FdEntry ***fds, size_t *nr);
/* The highest fd number any process restores. */
int files_restore_max_fd(const struct files_restore *fr);
FileEntry *files_restore_entry(struct files_restore *fr, uint32_t id);
/* Restore: the process that creates entry id (and its group). */
pid_t files_restore_owner(struct files_restore *fr, uint32_t id);
/* The kinds' restore_prepare, restore_session and restore_release (see struct fd_kind). */
int files_restore_prepare(struct files_restore *fr);
int files_restore_session(struct files_restore *fr, pid_t pid);
void files_restore_release(struct files_restore *fr);
/* Runs the kinds' restore_late for pid's installed fd table. */
int files_restore_late(struct files_restore *fr, pid_t pid, const struct crest_opts *opts);
/*
 * Creates the description of entry id (called in its owner); returns an fd or -errno.
 * entry_fd(arg, id) gives the descriptor of an entry the process created before (fd_open_arg).
 */
int files_restore_open(struct files_restore *fr, uint32_t id, pid_t pid, const struct crest_opts *opts,
		       int (*entry_fd)(void *arg, uint32_t id), void *arg);
size_t files_restore_nr_entries(const struct files_restore *fr);
/* The first entry whose description is shared memory object ino (kind's shmem_ino), or 0. */
uint32_t files_restore_shmem_entry(const struct files_restore *fr, uint64_t ino);
/* The idx-th entry in the order of creation: carried entries before their carriers. */
uint32_t files_restore_entry_id(const struct files_restore *fr, size_t idx);
void files_restore_free(struct files_restore *fr);

#endif
