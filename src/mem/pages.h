/* Private helpers of src/mem/: writing runs of pages, and the page copy buffer. */
#ifndef CREST_MEM_PAGES_H
#define CREST_MEM_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct img;
struct img_dir;

/* Writes pagemap-<id>.img and pages-<id>.img together. */
struct page_writer {
	struct img *pagemap;
	struct img *pages;
	uint64_t run_start;	/* the run being extended */
	uint32_t run_pages;
	uint64_t bytes;		/* page bytes written */
	/*
	 * Keep all-zero pages too. Dropping them is right only where a page left out reads as
	 * zero at restore (anonymous memory, a shmem hole); over a private file mapping the
	 * file's own bytes would show through instead.
	 */
	bool keep_zero;
};

int page_writer_open(struct page_writer *pw, struct img_dir *dir, const char *id);
/* buf may be modified (non-zero pages are packed to its front). len is whole pages. */
int page_writer_add(struct page_writer *pw, uint64_t vaddr, char *buf, size_t len);
int page_writer_close(struct page_writer *pw);
/* Ends the current run: the next page starts a new pagemap entry even if adjacent. */
int page_writer_break(struct page_writer *pw);

bool page_is_zero(const void *page);
void *page_buf_alloc(void);
void page_buf_free(void *buf);
size_t page_buf_size(void);

#endif

struct img_dir;
/*
 * Reads pagemap-<id>.img and pages-<id>.img, copying each run to dest_of(arg, vaddr, len)
 * (NULL: the image is inconsistent; dest_of logs why). Adds page bytes read to *bytes.
 */
int mem_fill_pages(struct img_dir *dir, const char *id,
		   char *(*dest_of)(void *arg, uint64_t vaddr, uint64_t len), void *arg,
		   uint64_t *bytes);
