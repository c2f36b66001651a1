/*
 * `crest show PATH...`: prints an image directory, or a single image file, as JSON, by
 * walking protobuf-c descriptors, so that a new record type needs no code here. A directory
 * is checked as restore would check it (inventory, sizes, checksums) before it is printed.
 * Output is built in memory and written only when complete, so stdout is either valid JSON
 * or empty (with a one-line error on stderr).
 */
#define LOG_PREFIX "show: "

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/opts.h"
#include "files/files.h"
#include "task/task.h"
#include "image/img.h"
#include "image/zchunk.h"
#include "util/log.h"
#include "util/util.h"

#include "fdinfo.pb-c.h"

#define JW_MAX_DEPTH	64
#define BYTES_MAX	4096	/* longer bytes fields print as their length only */
#define RAW_PREFIX	"pages-"	/* raw page files have no magic; they go by name */

/* ---------------------------------------------------------------- JSON writer */

/* A pretty-printing JSON writer: tracks nesting so that commas and indents come out right. */
struct jw {
	FILE *f;
	int depth;
	bool first[JW_MAX_DEPTH];	/* nothing printed yet in the container at this depth */
};

static void jw_newline(struct jw *w)
{
	int i;

	fputc('\n', w->f);
	for (i = 0; i < w->depth; i++)
		fputs("  ", w->f);
}

/* Starts a value inside the current container: a comma after the previous one. */
static void jw_elem(struct jw *w)
{
	if (!w->depth)
		return;
	if (!w->first[w->depth])
		fputc(',', w->f);
	w->first[w->depth] = false;
	jw_newline(w);
}

static int jw_open(struct jw *w, char c)
{
	if (w->depth + 1 >= JW_MAX_DEPTH) {
		pr_err("records nested more than %d deep", JW_MAX_DEPTH);
		return -ELOOP;
	}
	fputc(c, w->f);
	w->first[++w->depth] = true;
	return 0;
}

static void jw_close(struct jw *w, char c)
{
	bool empty = w->first[w->depth--];

	if (!empty)
		jw_newline(w);
	fputc(c, w->f);
}

/* Length of the valid UTF-8 sequence at s, or 0 (overlong, surrogate, cut short, ...). */
static size_t utf8_len(const unsigned char *s, size_t left)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Paths and comm names are bytes, not always UTF-8, but JSON must be: a byte that is not
 * part of valid UTF-8 is shown as \u00XX, which reads right for Latin-1 names at least.
 */
static void jw_string(struct jw *w, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t left = strlen(str), n;

	fputc('"', w->f);
	for (; left; s += n, left -= n) {
		n = 1;
		if (*s == '"' || *s == '\\')
			fprintf(w->f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", w->f);
		else if (*s == '\t')
			fputs("\\t", w->f);
		else if (*s < 0x20 || *s == 0x7f)
			fprintf(w->f, "\\u%04x", *s);
		else if (*s < 0x80)
			fputc(*s, w->f);
		else if ((n = utf8_len(s, left)))
			fwrite(s, 1, n, w->f);
		else
			fprintf(w->f, "\\u%04x", *s), n = 1;
	}
	fputc('"', w->f);
}

static void jw_key(struct jw *w, const char *key)
{
	jw_elem(w);
	jw_string(w, key);
	fputs(": ", w->f);
}

static void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%" PRIu64, v);
}

/* ---------------------------------------------------------------- messages */

static int print_message(struct jw *w, const ProtobufCMessage *msg);

/* Bytes as a hex string; past BYTES_MAX only the length, as pages of hex help nobody. */
static int print_bytes(struct jw *w, const ProtobufCBinaryData *b)
{
	size_t i;
	int err;

	if (b->len > BYTES_MAX) {
		err = jw_open(w, '{');
		if (err)
			return err;
		jw_u64(w, "len", b->len);
		jw_close(w, '}');
		return 0;
	}
	fputc('"', w->f);
	for (i = 0; i < b->len; i++)
		fprintf(w->f, "%02x", b->data[i]);
	fputc('"', w->f);
	return 0;
}

static void print_double(struct jw *w, double d)
{
	/* JSON has no NaN or infinity: name them in a string rather than print invalid JSON. */
	if (isfinite(d))
		fprintf(w->f, "%.17g", d);
	else
		fprintf(w->f, "\"%s\"", isnan(d) ? "nan" : d > 0 ? "inf" : "-inf");
}

static void print_enum(struct jw *w, const ProtobufCEnumDescriptor *desc, int v)
{
	const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(desc, v);

	if (ev)
		jw_string(w, ev->name);
	else
		fprintf(w->f, "%d", v);	/* a value newer than this crest's schema */
}

/* Prints one value of field f, stored at p. */
static int print_value(struct jw *w, const ProtobufCFieldDescriptor *f, const void *p)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(w->f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(w->f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(w->f, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(w->f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		print_double(w, *(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		print_double(w, *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", w->f);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		print_enum(w, f->descriptor, *(const int *)p);
		break;
	case PROTOBUF_C_TYPE_STRING:
		jw_string(w, *(const char * const *)p);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		return print_bytes(w, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return print_message(w, *(const ProtobufCMessage * const *)p);
	}
	return 0;
}

/* The size of one element of a repeated field, as protobuf-c lays out the array. */
static size_t value_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return sizeof(uint64_t);
	case PROTOBUF_C_TYPE_DOUBLE:
		return sizeof(double);
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_ENUM:
		return sizeof(int);
	case PROTOBUF_C_TYPE_STRING:
		return sizeof(char *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(ProtobufCMessage *);
	default:
		return sizeof(uint32_t);	/* the 32-bit integers and float */
	}
}

/*
 * How many values field f has in msg: its count if repeated, else 1 if present. Optional
 * strings and messages are present when their pointer is set (and, for a string with a
 * default, is not the default); optional scalars have a has_ flag, oneof members a case.
 */
static size_t field_count(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
	const char *base = (const char *)msg;
	const void *ptr;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)(base + f->quantifier_offset);
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
		ptr = *(const void * const *)(base + f->offset);
		return ptr && (f->label != PROTOBUF_C_LABEL_OPTIONAL || ptr != f->default_value);
	}
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
	return 1;	/* required, or proto3 without presence */
}

/*
 * file_entry.payload and task_extra.payload are the record of a kind (an fd_kind or a
 * task_kind): decode it when the kind is known, else show the bytes.
 */
static int print_kind_payload(struct jw *w, const char *kind, const ProtobufCBinaryData *payload,
			      const ProtobufCMessageDescriptor *desc)
{
	ProtobufCMessage *m;
	int err;

	if (!desc)
		return print_bytes(w, payload);
	m = protobuf_c_message_unpack(desc, NULL, payload->len, payload->data);
	if (!m) {
		pr_warn("cannot decode a %s record, shown as bytes", kind);
		return print_bytes(w, payload);
	}
	err = print_message(w, m);
	protobuf_c_message_free_unpacked(m, NULL);
	return err;
}

static bool is_scalar(ProtobufCType type)
{
	return type != PROTOBUF_C_TYPE_STRING && type != PROTOBUF_C_TYPE_BYTES &&
	       type != PROTOBUF_C_TYPE_MESSAGE;
}

/* Scalars (auxv, tids, ...) go on one line: one per line would bury the rest. */
static int print_scalar_array(struct jw *w, const ProtobufCFieldDescriptor *f, const char *p,
			      size_t n)
{
	size_t i, size = value_size(f->type);

	fputc('[', w->f);
	for (i = 0; i < n; i++) {
		if (i)
			fputs(", ", w->f);
		print_value(w, f, p + i * size);
	}
	fputc(']', w->f);
	return 0;
}

static int print_field(struct jw *w, const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f,
		       size_t n)
{
	const char *p = (const char *)msg + f->offset;
	size_t i, size = value_size(f->type);
	int err = 0;

	jw_key(w, f->name);
	if (msg->descriptor == &file_entry__descriptor && !strcmp(f->name, "payload")) {
		const FileEntry *fe = (const FileEntry *)msg;

		return print_kind_payload(w, fe->kind, &fe->payload, fd_kind_payload_desc(fe->kind));
	}
	if (msg->descriptor == &task_extra__descriptor && !strcmp(f->name, "payload")) {
		const TaskExtra *te = (const TaskExtra *)msg;

		return print_kind_payload(w, te->kind, &te->payload, task_kind_payload_desc(te->kind));
	}
	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return print_value(w, f, p);
	p = *(const char * const *)p;	/* repeated: a pointer to an array of n values */
	if (is_scalar(f->type))
		return print_scalar_array(w, f, p, n);
	err = jw_open(w, '[');
	for (i = 0; i < n && !err; i++) {
		jw_elem(w);
		err = print_value(w, f, p + i * size);
	}
	if (!err)
		jw_close(w, ']');
	return err;
}

static int print_message(struct jw *w, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *desc = msg->descriptor;
	unsigned int i;
	size_t n;
	int err;

	err = jw_open(w, '{');
	for (i = 0; i < desc->n_fields && !err; i++) {
		n = field_count(msg, &desc->fields[i]);
		if (n)
			err = print_field(w, msg, &desc->fields[i], n);
	}
	if (!err)
		jw_close(w, '}');
	return err;
}

/* ---------------------------------------------------------------- record files */

/* Yields the next record of type desc, or NULL at the end; from an img or from memory. */
typedef int (*next_record_fn)(void *src, const ProtobufCMessageDescriptor *desc,
			      ProtobufCMessage **ret);

/* Prints every record as a JSON array: the head type first if the magic has one. */
static int print_records(struct jw *w, uint32_t magic, next_record_fn next, void *src)
{
	const ProtobufCMessageDescriptor *head = img_magic_head_desc(magic);
	const ProtobufCMessageDescriptor *entry = img_magic_entry_desc(magic);
	const ProtobufCMessageDescriptor *desc;
	ProtobufCMessage *msg;
	unsigned int i;
	int err;

	err = jw_open(w, '[');
	for (i = 0; !err; i++) {
		desc = (i == 0 && head) || !entry ? head : entry;
		err = next(src, desc, &msg);
		if (err || !msg)
			break;
		jw_elem(w);
		err = print_message(w, msg);
		protobuf_c_message_free_unpacked(msg, NULL);
	}
	if (!err)
		jw_close(w, ']');
	return err;
}

static bool magic_known(uint32_t magic)
{
	return img_magic_head_desc(magic) || img_magic_entry_desc(magic);
}

static bool is_raw_name(const char *name)
{
	const char *base = strrchr(name, '/');

	return !strncmp(base ? base + 1 : name, RAW_PREFIX, strlen(RAW_PREFIX));
}

/*
 * A page file: its size, and for one written with --compress (its chunk headers chain to
 * its end) the number of chunks and the size of the data they hold.
 */
static int print_raw(struct jw *w, int fd, uint64_t size)
{
	uint64_t chunks, data_size;
	int err = jw_open(w, '{');

	if (err)
		return err;
	jw_key(w, "raw");
	fputs("true", w->f);
	jw_u64(w, "size", size);
	if (fd >= 0 && !zchunk_scan(fd, size, &chunks, &data_size)) {
		jw_key(w, "format");
		jw_string(w, "zstd-chunks");
		jw_u64(w, "chunks", chunks);
		jw_u64(w, "data_size", data_size);
	}
	jw_close(w, '}');
	return 0;
}

/* A record file given alone, read whole into memory. */
struct mem_file {
	const char *name;
	uint8_t *buf;
	size_t len;
	size_t pos;		/* next record */
	unsigned int idx;	/* its index, for messages */
};

static uint32_t get_le32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * The record framing of img.c, for a file outside any image directory (img.h opens files
 * only through an inventory). With no checksum to go by, a cut is found by the framing.
 */
static int next_mem_record(void *src, const ProtobufCMessageDescriptor *desc,
			   ProtobufCMessage **ret)
{
	struct mem_file *mf = src;
	size_t left = mf->len - mf->pos;
	uint32_t rlen;

	*ret = NULL;
	if (!left)
		return 0;
	rlen = left >= 4 ? get_le32(mf->buf + mf->pos) : 0;
	if (left < 4 || rlen > left - 4) {
		pr_err("%s: record %u: truncated (%zu bytes left)", mf->name, mf->idx, left);
		return -EIO;
	}
	*ret = protobuf_c_message_unpack(desc, NULL, rlen, mf->buf + mf->pos + 4);
	if (!*ret) {
		pr_err("%s: record %u: cannot decode %u bytes as %s", mf->name, mf->idx, rlen,
		       desc->name);
		return -EIO;
	}
	mf->pos += 4 + rlen;
	mf->idx++;
	return 0;
}

/* The magic at the start of a record file; one this crest does not know is an error. */
static int read_magic(int fd, const char *name, uint32_t *ret)
{
	uint8_t hdr[4];
	int err;

	err = pread_all(fd, hdr, sizeof(hdr), 0);
	if (err)
		return pr_errno(err == -ENODATA ? -EINVAL : err, "%s: cannot read the magic", name);
	if (!magic_known(get_le32(hdr))) {
		pr_err("%s: unknown magic 0x%08x: not a crest image file", name, get_le32(hdr));
		return -EINVAL;
	}
	*ret = get_le32(hdr);
	return 0;
}

/* Reads a whole regular file, after checking its magic, so a stray big file is not loaded. */
static int load_record_file(const char *path, int fd, size_t size, struct mem_file *mf,
			    uint32_t *ret_magic)
{
	int err;

	err = read_magic(fd, path, ret_magic);
	if (err)
		return err;
	mf->buf = xmalloc(size);
	if (!mf->buf)
		return -ENOMEM;
	err = pread_all(fd, mf->buf, size, 0);
	if (err)
		return pr_errno(err, "%s: cannot read %zu bytes", path, size);
	mf->name = path;
	mf->len = size;
	mf->pos = 4;
	return 0;
}

static int show_file(struct jw *w, const char *path, int fd, const struct stat *st)
{
	struct mem_file mf = { 0 };
	uint32_t magic = 0;
	int err;

	if (!S_ISREG(st->st_mode)) {
		pr_err("%s: not an image file or directory", path);
		return -EINVAL;
	}
	if (is_raw_name(path))
		return print_raw(w, fd, st->st_size);
	err = load_record_file(path, fd, st->st_size, &mf, &magic);
	if (!err)
		err = print_records(w, magic, next_mem_record, &mf);
	free(mf.buf);
	return err;
}

/* ---------------------------------------------------------------- directories */

static int next_img_record(void *src, const ProtobufCMessageDescriptor *desc,
			   ProtobufCMessage **ret)
{
	return img_read_msg(src, desc, ret);
}

/* The magic of a listed file, to know which records it holds before img_open checks it. */
static int peek_magic(struct img_dir *dir, const char *name, uint32_t *ret)
{
	_cleanup_close_ int fd = openat(imgdir_fd(dir), name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return pr_errno(-errno, "%s: cannot open", name);
	return read_magic(fd, name, ret);
}

/* One listed file: its records, checked by img_open; page files only by size. */
static int show_dir_file(struct jw *w, struct img_dir *dir, const InvFile *f)
{
	uint32_t magic = 0;
	struct img *img;
	int err;

	if (is_raw_name(f->name)) {
		_cleanup_close_ int fd = openat(imgdir_fd(dir), f->name, O_RDONLY | O_CLOEXEC);

		return print_raw(w, fd, f->size);
	}
	err = peek_magic(dir, f->name, &magic);
	if (err)
		return err;
	img = img_open(dir, magic, "%s", f->name);
	if (!img)
		return -errno;
	err = print_records(w, magic, next_img_record, img);
	img_close(img);
	return err;
}

static int show_dir_files(struct jw *w, struct img_dir *dir)
{
	const Inventory *inv = imgdir_inventory(dir);
	size_t i;
	int err;

	err = jw_open(w, '{');
	for (i = 0; i < inv->n_files && !err; i++) {
		jw_key(w, inv->files[i]->name);
		err = show_dir_file(w, dir, inv->files[i]);
	}
	if (!err)
		jw_close(w, '}');
	return err;
}

static int show_dir(struct jw *w, const char *path)
{
	struct img_dir *dir;
	int err;

	err = imgdir_open_read(path, &dir);
	if (err)
		return err;
	err = jw_open(w, '{');
	if (!err) {
		jw_key(w, "inventory");
		err = print_message(w, &imgdir_inventory(dir)->base);
	}
	if (!err) {
		jw_key(w, "files");
		err = show_dir_files(w, dir);
	}
	if (!err)
		jw_close(w, '}');
	imgdir_close(dir);
	return err;
}

/* ---------------------------------------------------------------- the verb */

static int show_path(struct jw *w, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return pr_errno(-errno, "%s: cannot open", path);
	if (fstat(fd, &st))
		return pr_errno(-errno, "%s: cannot stat", path);
	if (S_ISDIR(st.st_mode))
		return show_dir(w, path);
	return show_file(w, path, fd, &st);
}

/*
 * One path prints as one JSON document; several print as one object keyed by path, so
 * that the output always stays a single valid document.
 */
static int show_paths(struct jw *w, char **paths, int n)
{
	int i, err = 0;

	if (n == 1)
		return show_path(w, paths[0]);
	err = jw_open(w, '{');
	for (i = 0; i < n && !err; i++) {
		jw_key(w, paths[i]);
		err = show_path(w, paths[i]);
	}
	if (!err)
		jw_close(w, '}');
	return err;
}

static int write_stdout(const char *buf, size_t len)
{
	if (fwrite(buf, 1, len, stdout) != len || fflush(stdout)) {
		pr_perror("cannot write to stdout");
		return -EIO;
	}
	return 0;
}

int cmd_show(const struct crest_opts *opts)
{
	char *dflt[] = { (char *)(opts->images_dir ? opts->images_dir : ".") };
	char **paths = opts->nr_args ? opts->args : dflt;
	int n = opts->nr_args ? opts->nr_args : 1;
	struct jw w = { 0 };
	char *out = NULL;
	size_t len = 0;
	int err;

	w.f = open_memstream(&out, &len);
	if (!w.f) {
		pr_perror("cannot allocate the output buffer");
		return 1;
	}
	err = show_paths(&w, paths, n);
	fputc('\n', w.f);
	if (fclose(w.f)) {
		pr_perror("cannot build the output");
		err = err ?: -ENOMEM;
	}
	if (!err)
		err = write_stdout(out, len);
	free(out);
	return err ? 1 : 0;
}
