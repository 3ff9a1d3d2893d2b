/*
 * table.c - column formatting and safe writing of untrusted text.
 */
#include "config/portierctl/table.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_GAP 2

/* table_ctl_len: the length of the control character at s (1 for C0 and DEL,
 * 2 for a UTF-8 encoded C1), 0 when s does not start with one. */
static size_t table_ctl_len(const unsigned char *s)
{
	if (s[0] < 0x20 || s[0] == 0x7f)
		return 1;
	if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
		return 2;
	return 0;
}

void table_put(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;
	size_t n;

	while (*p) {
		if ((n = table_ctl_len(p)) == 0) {
			p++;
			continue;
		}
		fwrite(run, 1, (size_t)(p - run), out);
		fputc('?', out);
		p += n;
		run = p;
	}
	fwrite(run, 1, (size_t)(p - run), out);
}

size_t table_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0, n;

	while (*p) {
		if ((n = table_ctl_len(p)) > 0) {
			w++;
			p += n;
			continue;
		}
		if ((*p & 0xc0) != 0x80)
			w++;
		p++;
	}
	return w;
}

int table_init(struct table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	if (ncols == 0 || ncols > TABLE_MAX_COLS)
		return -1;
	t->ncols = ncols;
	if (!headers)
		return 0;
	if (table_add(t, headers) < 0)
		return -1;
	t->header = true;
	return 0;
}

int table_add(struct table *t, const char *const *cells)
{
	char **row;

	if (t->ncols == 0)
		return -1;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **grown;

		if (cap > SIZE_MAX / sizeof(char *) / t->ncols)
			return -1;
		grown = realloc(t->cells, cap * t->ncols * sizeof(char *));
		if (!grown)
			return -1;
		t->cells = grown;
		t->cap = cap;
	}
	row = t->cells + t->nrows * t->ncols;
	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = strdup(cells[i] && cells[i][0] ? cells[i] : "-");
		if (!row[i]) {
			while (i > 0)
				free(row[--i]);
			return -1;
		}
	}
	t->nrows++;
	return 0;
}

/* table_put_header: a header cell in capitals. */
static void table_put_header(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	while (*p) {
		if ((n = table_ctl_len(p)) > 0) {
			fputc('?', out);
			p += n;
			continue;
		}
		fputc(*p < 0x80 ? toupper(*p) : *p, out);
		p++;
	}
}

void table_print(const struct table *t, FILE *out)
{
	size_t width[TABLE_MAX_COLS] = {0};

	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = table_width(t->cells[r * t->ncols + c]);

			if (w > width[c])
				width[c] = w;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		size_t pad = 0;

		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			/* Padding is written before the next cell so that a
			 * line never ends in blanks. */
			for (size_t i = 0; i < pad; i++)
				fputc(' ', out);
			if (r == 0 && t->header)
				table_put_header(out, cell);
			else
				table_put(out, cell);
			pad = width[c] - table_width(cell) + TABLE_GAP;
		}
		fputc('\n', out);
	}
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
	t->cap = 0;
}
