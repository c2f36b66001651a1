/* Per-stage times of a dump or restore, printed by --display-stats. */
#ifndef CREST_CORE_STATS_H
#define CREST_CORE_STATS_H

#include <stdint.h>

#define STATS_MAX_STAGES 16

struct stats {
	uint64_t start_ns;
	uint64_t frozen_ns;	/* first task stopped (dump) */
	uint64_t thawed_ns;	/* last task resumed or killed (dump), tree running (restore) */
	uint64_t pages_bytes;
	unsigned int nr_stages;
	struct {
		const char *name;
		uint64_t ns;
	} stages[STATS_MAX_STAGES];
};

void stats_start(struct stats *st);
void stats_mark_frozen(struct stats *st);
void stats_mark_thawed(struct stats *st);
void stats_add_stage(struct stats *st, const char *name, uint64_t ns);
void stats_print(const struct stats *st, const char *verb);

#endif
