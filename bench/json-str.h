/* A C string as a JSON string literal: shared by the bench programs that write JSON. */
#ifndef CREST_BENCH_JSON_STR_H
#define CREST_BENCH_JSON_STR_H

#include <stdio.h>

static inline void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

#endif
