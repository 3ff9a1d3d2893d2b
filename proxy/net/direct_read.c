#include "proxy/net/direct_read.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define DIRECT_READ_CHUNK (16 * 1024) /* a TLS record's payload at most */

/* read_once: one read into the input's free space; >0 bytes, 0 nothing yet,
 * <0 end. */
static int read_once(struct bufferevent *bev, SSL *ssl, size_t want)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(in, (ev_ssize_t)want, &v, 1) < 1)
		return -1;
	size_t room = v.iov_len < want ? v.iov_len : want;
	ssize_t n;
	if (ssl) {
		ERR_clear_error();
		int r = SSL_read(ssl, v.iov_base, room > INT_MAX ? INT_MAX : (int)room);
		if (r > 0) {
			n = r;
		} else {
			int err = SSL_get_error(ssl, r);
			ERR_clear_error();
			/* WANT_WRITE (a key update to answer into a full socket):
			 * the bufferevent meets it again on its next read. */
			return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? 0 : -1;
		}
	} else {
		n = read(bufferevent_getfd(bev), v.iov_base, room);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
		if (n == 0)
			return -1;
	}
	v.iov_len = (size_t)n;
	evbuffer_commit_space(in, &v, 1);
	return (int)n;
}

static enum direct_read_result read_records(struct bufferevent *bev, SSL *ssl, size_t budget)
{
	size_t got = 0;
	/* A record begun is read to its end whatever the budget: its rest
	 * would sit in OpenSSL, where no readiness event announces it. */
	while (got < budget || (ssl && SSL_pending(ssl) > 0)) {
		int n = read_once(bev, ssl, DIRECT_READ_CHUNK);
		if (n < 0)
			return got ? DIRECT_READ_MORE : DIRECT_READ_END;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got ? DIRECT_READ_MORE : DIRECT_READ_EMPTY;
}

enum direct_read_result direct_read(struct bufferevent *bev, bool tls, size_t budget)
{
	SSL *ssl = tls ? bufferevent_openssl_get_ssl(bev) : NULL;
	/* A socket bufferevent keeps its input's end frozen between its own
	 * reads; a bufferevent_openssl does not freeze it. */
	struct evbuffer *in = bufferevent_get_input(bev);
	if (!ssl)
		evbuffer_unfreeze(in, 0);
	enum direct_read_result r = read_records(bev, ssl, budget);
	if (!ssl)
		evbuffer_freeze(in, 0);
	return r;
}
