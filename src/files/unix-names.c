/*
 * "unix" at restore: socket names. bind(2), connect(2) and sendto(2) resolve a relative path
 * against the cwd, so each call with one runs in the directory recorded at dump. A path must be
 * free to bind: a socket file outlives its socket, and what the dumped (then killed) process
 * left behind is removed, while a file a live socket answers on is not touched. Temporary
 * sockets that lend a name to a closed peer or sender bind relative paths in a private
 * directory, and leave absolute paths as a closed socket would.
 */
#define LOG_PREFIX "files/unix: "
#include "files/unix-restore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

static struct {
	char **unlink_paths;		/* absolute paths of socket files that were not there */
	size_t nr_unlink;
	char tmpdir[64];		/* private directory for relative temporary names */
} names;

bool unix_is_path(const struct uname *u)
{
	return u->len && u->name[0];
}

struct uname unix_rec_uname(const UnixAddr *a)
{
	return (struct uname){ a->name.data, a->name.len, a->dir };
}

socklen_t unix_make_sa(const struct uname *u, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, u->name, u->len);
	/* a path gets its NUL when there is room; the kernel terminates a full-length one */
	return offsetof(struct sockaddr_un, sun_path) +
	       MIN(u->len + unix_is_path(u), sizeof(sa->sun_path));
}

/* Enters u's directory for a relative path: bind, connect and sendto resolve it there. */
int unix_enter_dir(const struct uname *u, int *cwd)
{
	*cwd = -1;
	if (!u->dir || !unix_is_path(u))
		return 0;
	*cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*cwd < 0 || chdir(u->dir)) {
		int err = -errno;

		*cwd = safe_close(*cwd);
		return pr_errno(err, "cannot enter %s to reach a relative socket name", u->dir);
	}
	return 0;
}

void unix_leave_dir(int cwd)
{
	if (cwd >= 0 && fchdir(cwd))
		pr_perror("cannot return to crest's directory");
	safe_close(cwd);
}

int unix_name_call(int fd, const struct uname *u, enum unix_name_op op)
{
	struct sockaddr_un sa;
	socklen_t len = unix_make_sa(u, &sa);
	int cwd, ret = unix_enter_dir(u, &cwd);

	if (ret)
		return ret;
	if (op == UNIX_BIND)
		ret = bind(fd, (struct sockaddr *)&sa, len) ? -errno : 0;
	else
		ret = connect(fd, (struct sockaddr *)&sa, len) ? -errno : 0;
	unix_leave_dir(cwd);
	return ret;
}

/* The path of u as a string, and a directory descriptor it is relative to. */
int unix_path_at(const struct uname *u, char path[UNIX_NAME_MAX + 1], int *dfd)
{
	memcpy(path, u->name, u->len);
	path[u->len] = '\0';
	*dfd = AT_FDCWD;
	if (u->dir && path[0] != '/') {
		*dfd = open(u->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (*dfd < 0)
			return pr_errno(-errno, "cannot open %s, the directory of socket name %s", u->dir, path);
	}
	return 0;
}

/*
 * Whether a live socket answers on the socket file at u. A datagram connect(2) asks without
 * touching it: a file no socket holds gives ECONNREFUSED, a live socket of another type
 * EPROTOTYPE, a datagram socket accepts (and only our probe remembers that).
 */
static bool path_is_live(const struct uname *u)
{
	int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool live = probe < 0 || unix_name_call(probe, u, UNIX_CONNECT) != -ECONNREFUSED;

	safe_close(probe);
	return live;
}

/*
 * bind(2) needs the path free. A socket file nobody answers on is what a closed socket (the
 * dumped one, killed after the dump) leaves behind, and is removed; anything else stays, and
 * the restore fails rather than take a name from its owner. *existed tells if there was one.
 */
int unix_free_path(const struct uname *u, bool *existed)
{
	char path[UNIX_NAME_MAX + 1];
	struct stat st;
	int dfd, ret;

	*existed = false;
	if (!unix_is_path(u))
		return 0;
	ret = unix_path_at(u, path, &dfd);
	if (ret)
		return ret;
	if (fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW)) {
		ret = errno == ENOENT ? 0 : pr_errno(-errno, "cannot stat socket path %s", path);
	} else if (!S_ISSOCK(st.st_mode)) {
		pr_err("socket path %s exists and is not a socket: cannot bind to it", path);
		ret = -EEXIST;
	} else if (path_is_live(u)) {
		pr_err("socket path %s is in use by a live socket outside the restored tree", path);
		ret = -EADDRINUSE;
	} else if (unlinkat(dfd, path, 0)) {
		ret = pr_errno(-errno, "cannot remove the stale socket file %s", path);
	} else {
		*existed = true;
	}
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* Remembers an absolute path created by a temporary socket, to remove once done. */
static int unlink_later(const struct uname *u)
{
	char **paths = xrealloc(names.unlink_paths, (names.nr_unlink + 1) * sizeof(*paths));
	char *p = xmalloc(u->len + 1);

	if (paths)
		names.unlink_paths = paths;
	if (!paths || !p) {
		free(p);
		return -ENOMEM;
	}
	memcpy(p, u->name, u->len);
	p[u->len] = '\0';
	names.unlink_paths[names.nr_unlink++] = p;
	return 0;
}

/*
 * A temporary socket can give a peer or a sender its name back only by binding it. Relative
 * paths are bound in a private directory: getsockname(2) and recvfrom(2) show the relative
 * path alone, and nothing of the target's directory is touched.
 */
int unix_temp_uname(const uint8_t *name, size_t len, struct uname *ret)
{
	*ret = (struct uname){ name, len, NULL };
	if (!unix_is_path(ret) || name[0] == '/')
		return 0;
	if (!names.tmpdir[0]) {
		snprintf(names.tmpdir, sizeof(names.tmpdir), "/tmp/crest-unix-XXXXXX");
		if (!mkdtemp(names.tmpdir)) {
			names.tmpdir[0] = '\0';
			return pr_errno(-errno, "cannot create a directory for temporary socket names");
		}
	}
	ret->dir = names.tmpdir;
	return 0;
}

/*
 * Binds fd, a temporary socket, to name (see unix_temp_uname). An absolute path's socket file
 * stays when keep is set or when a stale one was there before, as the closed socket left it;
 * else it is removed at the end.
 */
int unix_temp_bind(int fd, const uint8_t *name, size_t len, bool keep)
{
	char buf[UNIX_NAME_STR];
	struct uname u;
	bool existed;
	int ret = unix_temp_uname(name, len, &u);

	if (!ret)
		ret = unix_free_path(&u, &existed);
	if (!ret)
		ret = unix_name_call(fd, &u, UNIX_BIND);
	if (ret)
		return pr_errno(ret, "cannot bind a temporary socket to %s", unix_name_str(name, len, buf));
	if (unix_is_path(&u) && !u.dir && !existed && !keep)
		return unlink_later(&u);
	return 0;
}

int unix_new_socket(uint32_t type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	return fd < 0 ? pr_errno(-errno, "cannot create a unix socket of type %u", type) : fd;
}

/* The private directory of relative temporary names, with the socket files left in it. */
static void remove_tmpdir(void)
{
	DIR *d;
	struct dirent *de;

	if (!names.tmpdir[0])
		return;
	d = opendir(names.tmpdir);
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	if (rmdir(names.tmpdir))
		pr_warn("cannot remove %s: %s", names.tmpdir, strerror(errno));
	names.tmpdir[0] = '\0';
}

void unix_names_cleanup(void)
{
	for (size_t i = 0; i < names.nr_unlink; i++) {
		unlink(names.unlink_paths[i]);
		free(names.unlink_paths[i]);
	}
	free(names.unlink_paths);
	names.unlink_paths = NULL;
	names.nr_unlink = 0;
	remove_tmpdir();
}
