/*
 * table.h - portierctl's terminal output of text it does not trust: a column
 * formatter and a writer that shows control characters as '?' so an answer
 * from the edge cannot drive the operator's terminal.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_MAX_COLS 16

/* A table of text cells, kept until printed. Cells are copied. */
struct table {
	size_t ncols;
	bool header;  /* row 0 is the header (printed in capitals) */
	char **cells; /* nrows * ncols, row-major */
	size_t nrows;
	size_t cap;   /* rows allocated */
};

/* table_init: an empty table of ncols (1..TABLE_MAX_COLS) columns; headers is
 * NULL for a table without a header row. -1 on a bad ncols or ENOMEM (t is
 * then empty and table_free is still safe). */
int table_init(struct table *t, size_t ncols, const char *const *headers);

/* table_add: append a row of ncols cells; a NULL or empty cell shows as
 * "-". -1 on ENOMEM, the table unchanged. */
int table_add(struct table *t, const char *const *cells);

/* table_print: columns left-aligned, as wide as their widest cell (never
 * truncated), two spaces apart, no trailing blanks. */
void table_print(const struct table *t, FILE *out);

/* table_free: release the cells; NULL-safe, the table is empty afterwards. */
void table_free(struct table *t);

/* table_put: write s to out with control characters (C0, DEL, C1) as '?'. */
void table_put(FILE *out, const char *s);

/* table_width: the columns s takes on a terminal as table_put writes it
 * (one per character; UTF-8 continuation bytes take none). */
size_t table_width(const char *s);
