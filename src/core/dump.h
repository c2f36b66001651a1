#ifndef CREST_CORE_DUMP_H
#define CREST_CORE_DUMP_H

struct crest_opts;

/* crest dump -t PID -D DIR: 0, or -errno after the failure was reported. */
int crest_dump(const struct crest_opts *opts);

#endif
