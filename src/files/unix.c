/*
 * "unix": the kind's table and what its dump and restore halves share. See unix.h.
 */
#define LOG_PREFIX "files/unix: "
#include "files/unix.h"

#include <stdio.h>

const char *unix_name_str(const uint8_t *name, size_t len, char buf[UNIX_NAME_STR])
{
	size_t off = 0;

	if (!len)
		return "unnamed";
	if (len > (size_t)UNIX_NAME_MAX)
		len = UNIX_NAME_MAX;
	for (size_t i = 0; i < len; i++) {
		if (i == 0 && name[0] == '\0')
			buf[off++] = '@';
		else if (name[i] >= 0x20 && name[i] < 0x7f)
			buf[off++] = name[i];
		else
			off += snprintf(buf + off, UNIX_NAME_STR - off, "\\x%02x", name[i]);
	}
	buf[off] = '\0';
	return buf;
}

const char *unix_addr_str(const UnixAddr *addr, char buf[UNIX_NAME_STR])
{
	return addr ? unix_name_str(addr->name.data, addr->name.len, buf) : "unnamed";
}

/*
 * Every unix socket of an image is in one group, so one process creates them all. Connections
 * form a graph across processes (a listener, the connections it accepted and their clients;
 * datagram sockets that send to each other's names), and the order of creation decides what
 * comes back: a connection's accepted end takes its name from a listener bound at that moment,
 * a datagram keeps its sender's name only if the sender is bound when it is sent, and a
 * datagram socket's queue must be refilled before it connects. One creator makes that order a
 * plain sequence, without races between processes over names.
 */
static uint64_t unix_group(const ProtobufCMessage *rec)
{
	return 1;
}

/* The descriptions in flight in the socket's queue (SCM_RIGHTS), which its refill sends again. */
static void unix_carried(const ProtobufCMessage *rec, void (*add)(void *arg, uint32_t id), void *arg)
{
	const UnixSk *us = (const UnixSk *)rec;

	for (size_t i = 0; i < us->n_queue; i++)
		for (size_t j = 0; j < us->queue[i]->n_files; j++)
			add(arg, us->queue[i]->files[j]);
}

const struct fd_kind fd_kind_unix = {
	.name = "unix",
	.desc = &unix_sk__descriptor,
	.match = unix_match,
	.dump = unix_dump,
	.dump_finish = unix_dump_finish,
	.group = unix_group,
	.open = unix_open,
	.keeps_fown = true,
	.carried = unix_carried,
};
