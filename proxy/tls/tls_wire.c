#include "proxy/tls/tls_wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/bio.h>

struct tls_wire {
	int fd;
	bool corked;
	bool drained; /* the last read emptied the socket; no readiness since */
	bool eof;
	unsigned char *held;
	size_t held_len, held_cap;
};

static BIO_METHOD *wire_method;
static int wire_type = -1; /* wire_method's, to know its BIOs */
static pthread_once_t wire_once = PTHREAD_ONCE_INIT;

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* wire_room: held has room for len more bytes. */
static int wire_room(struct tls_wire *w, size_t len)
{
	if (len <= w->held_cap - w->held_len)
		return 0;
	if (len > SIZE_MAX - w->held_len)
		return -1;
	unsigned char *p = realloc(w->held, w->held_len + len);
	if (!p)
		return -1;
	w->held = p;
	w->held_cap = w->held_len + len;
	return 0;
}

static int wire_hold(struct tls_wire *w, const char *data, size_t len)
{
	if (wire_room(w, len) < 0)
		return -1;
	memcpy(w->held + w->held_len, data, len);
	w->held_len += len;
	return 0;
}

/* wire_sent: n bytes of the held ones left; drop them. */
static void wire_sent(struct tls_wire *w, size_t n)
{
	w->held_len -= n;
	if (!w->held_len) {
		free(w->held);
		w->held = NULL;
		w->held_cap = 0;
	} else {
		memmove(w->held, w->held + n, w->held_len);
	}
}

/* wire_write: held bytes first, in the same writev. Data is taken only
 * once the held bytes are all gone, so OpenSSL's retry of a refused record
 * finds them sent or still first. */
static int wire_write(BIO *b, const char *data, int len)
{
	struct tls_wire *w = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (w->corked)
		return wire_hold(w, data, (size_t)len) == 0 ? len : -1;
	struct iovec v[2] = {{w->held, w->held_len}, {(void *)data, (size_t)len}};
	int first = w->held_len ? 0 : 1;
	ssize_t n = writev(w->fd, v + first, 2 - first);
	if (n < 0) {
		if (would_block())
			BIO_set_retry_write(b);
		return -1;
	}
	size_t sent = (size_t)n;
	if (w->held_len) {
		size_t of_held = sent < w->held_len ? sent : w->held_len;
		wire_sent(w, of_held);
		sent -= of_held;
		if (w->held_len || !sent) {
			BIO_set_retry_write(b);
			return -1;
		}
	}
	return (int)sent;
}

static int wire_read(BIO *b, char *out, int len)
{
	struct tls_wire *w = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (len <= 0)
		return 0;
	if (w->drained) {
		BIO_set_retry_read(b);
		return -1;
	}
	ssize_t n = read(w->fd, out, (size_t)len);
	if (n < 0) {
		if (would_block()) {
			w->drained = errno != EINTR;
			BIO_set_retry_read(b);
		}
		return -1;
	}
	if (n == 0)
		w->eof = true;
	else if (n < len)
		w->drained = true;
	return (int)n;
}

static long wire_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_wire *w = BIO_get_data(b);
	(void)num;
	switch (cmd) {
	case BIO_C_GET_FD:
		if (ptr)
			*(int *)ptr = w->fd;
		return w->fd;
	case BIO_CTRL_FLUSH:
		/* The owner flushes, once the flight is whole. (kTLS must stay
		 * off: OpenSSL would hand the kernel new keys believing the held
		 * records sent.) */
		return 1;
	case BIO_CTRL_EOF:
		return w->eof;
	case BIO_CTRL_WPENDING:
		return (long)w->held_len;
	default:
		return 0;
	}
}

static int wire_create(BIO *b)
{
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static int wire_destroy(BIO *b)
{
	struct tls_wire *w = BIO_get_data(b);
	if (w) {
		free(w->held);
		free(w);
	}
	BIO_set_data(b, NULL);
	return 1;
}

static void wire_method_init(void)
{
	int type = BIO_get_new_index();
	BIO_METHOD *m = type < 0 ? NULL
				 : BIO_meth_new(type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
						"portier tls_wire");
	if (m && (!BIO_meth_set_write(m, wire_write) || !BIO_meth_set_read(m, wire_read) ||
		  !BIO_meth_set_ctrl(m, wire_ctrl) || !BIO_meth_set_create(m, wire_create) ||
		  !BIO_meth_set_destroy(m, wire_destroy))) {
		BIO_meth_free(m);
		m = NULL;
	}
	wire_method = m;
	if (m)
		wire_type = type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR;
}

int tls_wire_attach(SSL *ssl, int fd)
{
	pthread_once(&wire_once, wire_method_init);
	struct tls_wire *w = wire_method ? calloc(1, sizeof *w) : NULL;
	BIO *b = w ? BIO_new(wire_method) : NULL;
	if (!b) {
		free(w);
		return -1;
	}
	w->fd = fd;
	BIO_set_data(b, w);
	BIO_set_init(b, 1);
	SSL_set_bio(ssl, b, b);
	return 0;
}

static struct tls_wire *wire_of(const SSL *ssl)
{
	pthread_once(&wire_once, wire_method_init);
	BIO *b = SSL_get_wbio(ssl);
	if (!b || wire_type < 0 || BIO_method_type(b) != wire_type)
		return NULL;
	return BIO_get_data(b);
}

void tls_wire_cork(SSL *ssl, bool on)
{
	struct tls_wire *w = wire_of(ssl);
	if (w)
		w->corked = on;
}

int tls_wire_reserve(SSL *ssl, size_t len)
{
	struct tls_wire *w = wire_of(ssl);
	return w ? wire_room(w, len) : 0;
}

bool tls_wire_corked(const SSL *ssl)
{
	struct tls_wire *w = wire_of(ssl);
	return w && w->corked;
}

int tls_wire_flush(SSL *ssl)
{
	struct tls_wire *w = wire_of(ssl);
	if (!w || !w->held_len)
		return 1;
	ssize_t n = write(w->fd, w->held, w->held_len);
	if (n < 0)
		return would_block() ? 0 : -1;
	wire_sent(w, (size_t)n);
	return w->held_len ? 0 : 1;
}

size_t tls_wire_held(const SSL *ssl)
{
	struct tls_wire *w = wire_of(ssl);
	return w ? w->held_len : 0;
}

void tls_wire_readable(SSL *ssl)
{
	struct tls_wire *w = wire_of(ssl);
	if (w)
		w->drained = false;
}
