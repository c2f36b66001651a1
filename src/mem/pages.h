/* Private helpers of src/mem/: writing runs of pages, and the page copy buffer. */
#ifndef CREST_MEM_PAGES_H
#define CREST_MEM_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct img;
struct img_dir;

/*
 * The page pipe (page-pipe.c) writes pagemap-<id>.img and pages-<id>.img: the caller fills
 * buffers with memory, a writer thread writes them. Usage: page_pipe_open, then for each
 * chunk page_pipe_buf (a free buffer of page_buf_size() bytes, ready for the len bytes the
 * caller will put in it; NULL once the pipe failed) and page_pipe_add, and page_pipe_close, which returns the first error of either side.
 */
struct page_pipe;
int page_pipe_open(struct img_dir *dir, const char *id, struct page_pipe **ret);
char *page_pipe_buf(struct page_pipe *pp, size_t len);
/*
 * Hands buf, holding len bytes (whole pages) of memory from vaddr, to the writer. All-zero
 * pages are dropped unless keep_zero: that is right only where a page left out reads as zero
 * at restore (anonymous memory, a shmem hole); over a private file mapping the file's own
 * bytes would show through instead. Runs continuing the previous one extend its entry.
 */
int page_pipe_add(struct page_pipe *pp, char *buf, uint64_t vaddr, size_t len, bool keep_zero);
/* Ends the current run: the next page starts a new pagemap entry even if adjacent. */
void page_pipe_break(struct page_pipe *pp);
/* Waits for the writer and closes both files; *bytes (may be NULL): page bytes written. */
int page_pipe_close(struct page_pipe *pp, uint64_t *bytes);

bool page_is_zero(const void *page);
size_t page_buf_size(void);

/* Restore (fill.c): where a run of pages from the image goes. */
struct fill_dest {
	char *addr;
	uint64_t area;		/* runs with the same area may be populated as one span */
};

struct fill_ops {
	/* Where the run at vaddr (address or object offset) goes; false, after logging why,
	 * when the image is inconsistent. */
	bool (*dest_of)(void *arg, uint64_t vaddr, uint64_t len, struct fill_dest *dest);
	/* Called for each span (runs of one area, with what lies between) before it is
	 * populated; may be NULL. */
	void (*span)(void *arg, uint64_t area, char *start, uint64_t len);
	/* Populate small gaps between runs of one area with them (see fill.c); off where a
	 * hole must stay a hole (a memfd's holes are visible with SEEK_HOLE). */
	bool bridge;
};

/*
 * Reads pagemap-<id>.img and pages-<id>.img, copying each run to where ops->dest_of says it
 * goes. Adds page bytes read to *bytes.
 */
int mem_fill_pages(struct img_dir *dir, const char *id, const struct fill_ops *ops, void *arg,
		   uint64_t *bytes);

#endif
