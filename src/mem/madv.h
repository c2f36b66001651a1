/* Private to src/mem/: mapping advice (madvise flags) and the THP-assisted restore fill. */
#ifndef CREST_MEM_MADV_H
#define CREST_MEM_MADV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mm.pb-c.h"

enum thp_mode { THP_NEVER, THP_MADVISE, THP_ALWAYS };

/* /sys/kernel/mm/transparent_hugepage/enabled, read once. */
enum thp_mode madv_thp_mode(void);
/* 1 << MADV_x for a two-letter VmFlags mnemonic crest restores, else 0. */
uint64_t madv_of_vmflag(const char *flag);
/* Asks for huge pages where the run dest+len covers whole 2 MiB blocks; true if it did. */
bool madv_thp_hint(char *dest, uint64_t len);
/* Sets the advice vma had on its premapped copy at addr (see madv.c for thp_hinted). */
int madv_restore(pid_t pid, const VmaEntry *vma, uint64_t addr, bool thp_hinted);

#endif
