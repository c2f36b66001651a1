/* The table of descriptor kinds: one line per kind, tried in this order at dump. */
#include "files/files.h"

#include <string.h>

extern const struct fd_kind fd_kind_reg;
extern const struct fd_kind fd_kind_pipe;
extern const struct fd_kind fd_kind_tty;

const struct fd_kind *const fd_kinds[] = {
	&fd_kind_reg,
	&fd_kind_pipe,
	&fd_kind_tty,
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
