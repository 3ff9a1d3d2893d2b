/*
 * access_log.h - one JSON object per request. Workers format into their own
 * buffer and hand full buffers to a writer thread, so a slow disk or pipe
 * never blocks a worker; past a bound, lines are dropped and counted.
 */
#pragma once

#include <event2/event.h>

#include "proxy/http/req.h"

struct access_log;
struct access_log_buf;

/* access_log_open: spec is "-" (stdout), "off", or a file path (appended). */
struct access_log *access_log_open(const char *spec, char *errbuf, size_t errlen);
/* access_log_reopen: reopen the file (SIGUSR1, after rotation). */
void access_log_reopen(struct access_log *l);
/* access_log_close: write what is queued, stop the writer. NULL-safe. */
void access_log_close(struct access_log *l);

/* access_log_buf_new: a worker's buffer, flushed every 100 ms on base. */
struct access_log_buf *access_log_buf_new(struct access_log *l, struct event_base *base);
void access_log_buf_free(struct access_log_buf *b);

/* access_log_record: append r's line (no-op when the log is off). */
void access_log_record(struct access_log_buf *b, const struct req *r);
