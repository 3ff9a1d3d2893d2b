#include "proxy/net/tls_read.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "proxy/net/read_hook.h"

#define TLS_READ_CHUNK (16 * 1024) /* a record's payload at most */
#define TLS_READ_MAX (64 * 1024)   /* per turn: then the next connection's */

static bool over_high(struct bufferevent *bev)
{
	return read_hook_room(bev, 1) == 0;
}

/* read_failure: what an SSL_read that returned r <= 0 means: 0 for "no more
 * for now", else the bufferevent event to report. */
static short read_failure(SSL *ssl, int r)
{
	int err = SSL_get_error(ssl, r);
	unsigned long e = ERR_peek_error();
	short what = 0;
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		what = 0; /* WANT_WRITE: a key update's answer waits for our next write */
	else if (err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SYSCALL && !e && !errno) ||
		 (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING))
		what = BEV_EVENT_EOF; /* close_notify, or a close without it (allowed) */
	else
		what = BEV_EVENT_ERROR;
	ERR_clear_error();
	return what;
}

static void tls_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	(void)fd;
	if (what & EV_TIMEOUT) {
		read_hook_fail(bev, BEV_EVENT_TIMEOUT);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		return; /* a rerun after reading was disabled: tls_read_kick resumes */
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t got = 0;
	short fail = 0;
	/* The first SSL_read reads the socket (read-ahead: all it has, up to
	 * OpenSSL's buffer); the next ones only while OpenSSL holds bytes. */
	while (got == 0 || SSL_has_pending(ssl)) {
		if (over_high(bev))
			break; /* libevent suspended reading; a drain resumes it */
		if (got >= TLS_READ_MAX) {
			read_hook_rerun(bev);
			break;
		}
		struct evbuffer_iovec v;
		if (evbuffer_reserve_space(in, TLS_READ_CHUNK, &v, 1) < 1) {
			fail = BEV_EVENT_ERROR;
			break;
		}
		/* SSL_get_error needs an empty queue; clearing one that is
		 * (nearly always) empty walked its 16 slots for 840
		 * instructions a read, a peek is a third of that. */
		if (ERR_peek_error())
			ERR_clear_error();
		errno = 0;
		int r = SSL_read(ssl, v.iov_base, v.iov_len > INT_MAX ? INT_MAX : (int)v.iov_len);
		if (r <= 0) {
			fail = read_failure(ssl, r);
			break;
		}
		v.iov_len = (size_t)r;
		evbuffer_commit_space(in, &v, 1);
		got += (size_t)r;
	}
	if (got) {
		/* An end or error met after data is met again on the rerun. */
		if (fail)
			read_hook_rerun(bev);
		bufferevent_trigger(bev, EV_READ, 0);
		return;
	}
	if (fail)
		read_hook_fail(bev, fail);
}

/* input_drained: the front consumed input; if that took it below the high
 * watermark, bytes OpenSSL kept meanwhile are read now. */
static void input_drained(struct evbuffer *in, const struct evbuffer_cb_info *info, void *arg)
{
	(void)in;
	if (info->n_deleted)
		tls_read_kick(arg);
}

void tls_read_kick(struct bufferevent *bev)
{
	if (!read_hook_is(bev, tls_read_cb) || !(bufferevent_get_enabled(bev) & EV_READ) ||
	    over_high(bev))
		return;
	/* Bytes read ahead, or a close_notify read with the last data whose
	 * end of file was not reported yet: neither makes the socket readable. */
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	if (SSL_has_pending(ssl) || (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN))
		read_hook_rerun(bev);
}

void tls_read_install(struct bufferevent *bev)
{
	if (read_hook_is(bev, tls_read_cb))
		return;
	SSL_set_read_ahead(bufferevent_openssl_get_ssl(bev), 1);
	read_hook_install(bev, tls_read_cb);
	evbuffer_add_cb(bufferevent_get_input(bev), input_drained, bev);
}
