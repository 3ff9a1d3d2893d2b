#include "proxy/log/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "proxy/core/clock.h"
#include "proxy/core/log.h"

#define ACCESS_LOG_FLUSH_BYTES (64 * 1024)
#define ACCESS_LOG_MAX_QUEUED (64u * 1024 * 1024)

struct access_log {
	char *path; /* NULL for stdout */
	int fd;
	bool off;
	pthread_t writer;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct evbuffer *queue; /* unlocked evbuffer, guarded by lock */
	size_t queued;
	unsigned long dropped;
	bool stop, reopen;
};

struct access_log_buf {
	struct access_log *log;
	struct evbuffer *buf;
	struct event *timer;
};

static int access_log_open_fd(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

static void *access_log_writer(void *arg)
{
	struct access_log *l = arg;
	struct evbuffer *batch = evbuffer_new();
	pthread_mutex_lock(&l->lock);
	for (;;) {
		while (!l->stop && !l->reopen && evbuffer_get_length(l->queue) == 0)
			pthread_cond_wait(&l->wake, &l->lock);
		if (l->reopen && l->path) {
			int fd = access_log_open_fd(l->path);
			if (fd >= 0) {
				close(l->fd);
				l->fd = fd;
			}
		}
		l->reopen = false;
		evbuffer_add_buffer(batch, l->queue);
		l->queued = 0;
		bool stop = l->stop;
		pthread_mutex_unlock(&l->lock);
		while (evbuffer_get_length(batch)) {
			if (evbuffer_write(batch, l->fd) < 0 && errno != EINTR) {
				evbuffer_drain(batch, evbuffer_get_length(batch));
				break;
			}
		}
		pthread_mutex_lock(&l->lock);
		if (stop && evbuffer_get_length(l->queue) == 0)
			break;
	}
	pthread_mutex_unlock(&l->lock);
	evbuffer_free(batch);
	return NULL;
}

struct access_log *access_log_open(const char *spec, char *errbuf, size_t errlen)
{
	struct access_log *l = calloc(1, sizeof *l);
	if (!l) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	l->fd = -1;
	if (!spec || strcmp(spec, "off") == 0) {
		l->off = true;
		return l;
	}
	if (strcmp(spec, "-") == 0) {
		l->fd = dup(STDOUT_FILENO);
	} else {
		l->path = strdup(spec);
		l->fd = access_log_open_fd(spec);
	}
	if (l->fd < 0) {
		snprintf(errbuf, errlen, "access_log: %s: %s", spec, strerror(errno));
		free(l->path);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->wake, NULL);
	l->queue = evbuffer_new();
	if (!l->queue || pthread_create(&l->writer, NULL, access_log_writer, l) != 0) {
		snprintf(errbuf, errlen, "access_log: cannot start writer");
		if (l->queue)
			evbuffer_free(l->queue);
		close(l->fd);
		free(l->path);
		free(l);
		return NULL;
	}
	return l;
}

void access_log_reopen(struct access_log *l)
{
	if (!l || l->off)
		return;
	pthread_mutex_lock(&l->lock);
	l->reopen = true;
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->lock);
}

void access_log_close(struct access_log *l)
{
	if (!l)
		return;
	if (!l->off) {
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_cond_signal(&l->wake);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->writer, NULL);
		if (l->dropped)
			log_warn("access log: %lu lines dropped (writer too slow)", l->dropped);
		evbuffer_free(l->queue);
		close(l->fd);
		pthread_mutex_destroy(&l->lock);
		pthread_cond_destroy(&l->wake);
	}
	free(l->path);
	free(l);
}

/* access_log_flush: hand the worker's lines to the writer (one lock per batch). */
static void access_log_flush(struct access_log_buf *b)
{
	struct access_log *l = b->log;
	size_t n = evbuffer_get_length(b->buf);
	if (n == 0)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->queued + n > ACCESS_LOG_MAX_QUEUED) {
		l->dropped++;
		evbuffer_drain(b->buf, n);
	} else {
		l->queued += n;
		evbuffer_add_buffer(l->queue, b->buf);
		pthread_cond_signal(&l->wake);
	}
	pthread_mutex_unlock(&l->lock);
}

static void access_log_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	access_log_flush(arg);
}

struct access_log_buf *access_log_buf_new(struct access_log *l, struct event_base *base)
{
	struct access_log_buf *b = calloc(1, sizeof *b);
	if (!b)
		return NULL;
	b->log = l;
	if (l->off)
		return b;
	b->buf = evbuffer_new();
	b->timer = event_new(base, -1, EV_PERSIST, access_log_tick, b);
	struct timeval tv = {0, 100 * 1000};
	if (!b->buf || !b->timer || event_add(b->timer, &tv) < 0) {
		access_log_buf_free(b);
		return NULL;
	}
	return b;
}

void access_log_buf_free(struct access_log_buf *b)
{
	if (!b)
		return;
	if (b->buf) {
		access_log_flush(b);
		evbuffer_free(b->buf);
	}
	if (b->timer)
		event_free(b->timer);
	free(b);
}

/* access_log_str: a JSON string of s[0..len) (escaped; bytes >= 0x80 as \u00XX). */
static void access_log_str(struct evbuffer *out, const char *s, size_t len)
{
	evbuffer_add(out, "\"", 1);
	for (size_t i = 0; s && i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			evbuffer_add_printf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			evbuffer_add_printf(out, "\\u%04x", c);
		else
			evbuffer_add(out, &s[i], 1);
	}
	evbuffer_add(out, "\"", 1);
}

static void access_log_cstr(struct evbuffer *out, const char *s)
{
	if (s)
		access_log_str(out, s, strlen(s));
	else
		evbuffer_add(out, "null", 4);
}

void access_log_record(struct access_log_buf *b, const struct req *r)
{
	if (!b || !b->buf)
		return;
	struct evbuffer *out = b->buf;
	char when[40];
	int64_t now = clock_wall_ms();
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof when - n, ".%03dZ", (int)(now % 1000));
	evbuffer_add_printf(out, "{\"time\":\"%s\",\"tenant\":", when);
	access_log_cstr(out, r->route.tenant ? r->route.tenant->name : NULL);
	evbuffer_add(out, ",\"host\":", 8);
	access_log_str(out, r->host, r->host_len);
	evbuffer_add(out, ",\"method\":", 10);
	access_log_str(out, r->method, r->method_len);
	evbuffer_add(out, ",\"path\":", 8);
	access_log_str(out, r->path, r->path_len);
	evbuffer_add_printf(out, ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%lld",
			    r->status, (unsigned long long)r->bytes_in,
			    (unsigned long long)r->bytes_out,
			    (long long)(r->start_ms ? clock_mono_ms() - r->start_ms : 0));
	evbuffer_add(out, ",\"upstream\":", 12);
	access_log_cstr(out, r->upstream[0] ? r->upstream : NULL);
	evbuffer_add_printf(out, ",\"upstream_ms\":%lld,\"client_ip\":", (long long)r->upstream_ms);
	access_log_cstr(out, r->client_ip);
	evbuffer_add(out, ",\"request_id\":", 14);
	access_log_cstr(out, r->id);
	evbuffer_add(out, ",\"protocol\":", 12);
	access_log_cstr(out, r->protocol);
	evbuffer_add(out, ",\"tls_version\":", 15);
	access_log_cstr(out, r->tls_version);
	evbuffer_add(out, "}\n", 2);
	if (evbuffer_get_length(out) >= ACCESS_LOG_FLUSH_BYTES)
		access_log_flush(b);
}
