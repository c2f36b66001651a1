#include "core/stats.h"

#include <inttypes.h>

#include "util/log.h"
#include "util/util.h"

void stats_start(struct stats *st)
{
	st->start_ns = now_ns();
}

void stats_mark_frozen(struct stats *st)
{
	st->frozen_ns = now_ns();
}

void stats_mark_thawed(struct stats *st)
{
	st->thawed_ns = now_ns();
}

void stats_add_stage(struct stats *st, const char *name, uint64_t ns)
{
	if (st->nr_stages < STATS_MAX_STAGES) {
		st->stages[st->nr_stages].name = name;
		st->stages[st->nr_stages].ns = ns;
		st->nr_stages++;
	}
}

static double ms(uint64_t ns)
{
	return ns / 1e6;
}

void stats_print(const struct stats *st, const char *verb)
{
	uint64_t end = st->thawed_ns ? st->thawed_ns : now_ns();

	pr_msg("%s statistics:", verb);
	for (unsigned int i = 0; i < st->nr_stages; i++)
		pr_msg("  %-12s %10.3f ms", st->stages[i].name, ms(st->stages[i].ns));
	if (st->frozen_ns)
		pr_msg("  %-12s %10.3f ms", "frozen", ms(end - st->frozen_ns));
	pr_msg("  %-12s %10.3f ms", "total", ms(end - st->start_ns));
	pr_msg("  %-12s %10.1f MiB", "pages", st->pages_bytes / 1048576.0);
}
