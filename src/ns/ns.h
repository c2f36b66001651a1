/* Namespaces: what crest can checkpoint of them. */
#ifndef CREST_NS_NS_H
#define CREST_NS_NS_H

#include <sys/types.h>

/*
 * Dump: crest restores processes into its own namespaces for now, so a process that lives
 * in any other (pid, net, ipc, uts, mnt, user, cgroup, time) makes the dump fail, naming it.
 */
int ns_check_dumpable(pid_t pid);

#endif
