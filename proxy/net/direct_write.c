#include "proxy/net/direct_write.h"

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
