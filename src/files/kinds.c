/* The table of descriptor kinds: one line per kind, tried in this order at dump. */
#include "files/files.h"

#include <string.h>

extern const struct fd_kind fd_kind_mqueue;
extern const struct fd_kind fd_kind_reg;
extern const struct fd_kind fd_kind_pipe;
extern const struct fd_kind fd_kind_tty;
extern const struct fd_kind fd_kind_ghost;
extern const struct fd_kind fd_kind_fifo;
extern const struct fd_kind fd_kind_memfd;
extern const struct fd_kind fd_kind_epoll;
extern const struct fd_kind fd_kind_inotify;
extern const struct fd_kind fd_kind_eventfd;
extern const struct fd_kind fd_kind_timerfd;
extern const struct fd_kind fd_kind_signalfd;
extern const struct fd_kind fd_kind_pidfd;
extern const struct fd_kind fd_kind_inet;
extern const struct fd_kind fd_kind_netlink;
extern const struct fd_kind fd_kind_unix;
extern const struct fd_kind fd_kind_unsupported_socket;

const struct fd_kind *const fd_kinds[] = {
	&fd_kind_mqueue,	/* first: a queue also looks like a regular or deleted file */
	&fd_kind_reg,
	&fd_kind_pipe,
	&fd_kind_tty,
	&fd_kind_ghost,
	&fd_kind_fifo,
	&fd_kind_memfd,
	&fd_kind_epoll,
	&fd_kind_inotify,
	&fd_kind_eventfd,
	&fd_kind_timerfd,
	&fd_kind_signalfd,
	&fd_kind_pidfd,
	&fd_kind_inet,
	&fd_kind_netlink,
	&fd_kind_unix,
	&fd_kind_unsupported_socket,	/* any position: it skips the families above */
	NULL,
};

const struct fd_kind *fd_kind_by_name(const char *name)
{
	for (size_t i = 0; fd_kinds[i]; i++)
		if (!strcmp(fd_kinds[i]->name, name))
			return fd_kinds[i];
	return NULL;
}

const ProtobufCMessageDescriptor *fd_kind_payload_desc(const char *name)
{
	const struct fd_kind *kind = fd_kind_by_name(name);

	return kind ? kind->desc : NULL;
}
