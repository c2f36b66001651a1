/*
 * Which protobuf message each kind of record file holds, by magic. `crest show` needs it to
 * print a file it knows only by its first four bytes; dump and restore name their types
 * directly and never look here.
 */
#include "image/img.h"
#include "util/util.h"

#include "core.pb-c.h"
#include "fdinfo.pb-c.h"
#include "files.pb-c.h"
#include "inventory.pb-c.h"
#include "ipc.pb-c.h"
#include "mm.pb-c.h"
#include "ns.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

struct img_magic_desc {
	uint32_t magic;
	/* the first record's type, for files that start with a head record; else NULL */
	const ProtobufCMessageDescriptor *head;
	/* the type of every other record (of all records when head is NULL) */
	const ProtobufCMessageDescriptor *entry;
};

static const struct img_magic_desc img_magic_descs[] = {
	{ IMG_MAGIC_INVENTORY, &inventory__descriptor,    NULL },
	{ IMG_MAGIC_PSTREE,    NULL,                      &pstree_entry__descriptor },
	{ IMG_MAGIC_CORE,      &task_core__descriptor,    &thread_core__descriptor },
	{ IMG_MAGIC_MM,        &mm_core__descriptor,      &vma_entry__descriptor },
	{ IMG_MAGIC_PAGEMAP,   &pagemap_head__descriptor, &pagemap_entry__descriptor },
	{ IMG_MAGIC_FILES,     NULL,                      &file_entry__descriptor },
	{ IMG_MAGIC_FDINFO,    NULL,                      &fd_entry__descriptor },
	{ IMG_MAGIC_PIPE_DATA, NULL,                      &pipe_data__descriptor },
	{ IMG_MAGIC_NS,        NULL,                      &ns_entry__descriptor },
	{ IMG_MAGIC_IPC_VAR,   NULL,                      &ipc_var_entry__descriptor },
	{ IMG_MAGIC_IPC_SHM,   NULL,                      &ipc_shm_entry__descriptor },
	{ IMG_MAGIC_IPC_SEM,   NULL,                      &ipc_sem_entry__descriptor },
	{ IMG_MAGIC_IPC_MSG,   NULL,                      &ipc_msg_entry__descriptor },
	{ IMG_MAGIC_IPC_MQ,    NULL,                      &ipc_mq_entry__descriptor },
};

static const struct img_magic_desc *find_magic(uint32_t magic)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(img_magic_descs); i++)
		if (img_magic_descs[i].magic == magic)
			return &img_magic_descs[i];
	return NULL;
}

const ProtobufCMessageDescriptor *img_magic_head_desc(uint32_t magic)
{
	const struct img_magic_desc *d = find_magic(magic);

	return d ? d->head : NULL;
}

const ProtobufCMessageDescriptor *img_magic_entry_desc(uint32_t magic)
{
	const struct img_magic_desc *d = find_magic(magic);

	return d ? d->entry : NULL;
}
