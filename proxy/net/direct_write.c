#include "proxy/net/direct_write.h"

#include <limits.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

void direct_write_move(struct evbuffer *dst, struct evbuffer *src, size_t n)
{
	if (n > DIRECT_WRITE_COALESCE) {
		evbuffer_remove_buffer(src, dst, n);
		return;
	}
	while (n) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(src, (ev_ssize_t)n, NULL, &v, 1) < 1)
			break;
		size_t take = v.iov_len < n ? v.iov_len : n;
		evbuffer_add(dst, v.iov_base, take);
		evbuffer_drain(src, take);
		n -= take;
	}
}

void direct_write(struct bufferevent *bev, bool tls, struct evbuffer *stage)
{
	if (evbuffer_get_length(stage) == 0)
		return;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		if (tls) {
			/* What SSL_write refuses (WANT_WRITE) goes to the output:
			 * the bufferevent retries it from the same bytes, which
			 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER allows; an error is
			 * met again there and reported as usual. */
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			for (;;) {
				struct evbuffer_iovec v;
				if (evbuffer_peek(stage, -1, NULL, &v, 1) < 1)
					break;
				int n = SSL_write(ssl, v.iov_base,
						  v.iov_len > INT_MAX ? INT_MAX : (int)v.iov_len);
				if (n <= 0) {
					ERR_clear_error();
					break;
				}
				evbuffer_drain(stage, (size_t)n);
			}
		} else {
			evbuffer_write(stage, bufferevent_getfd(bev));
		}
	}
	if (evbuffer_get_length(stage))
		bufferevent_write_buffer(bev, stage);
}
