/*
 * h1_response.c - the answering half of the HTTP/1.1 front: portier's own
 * responses (errors, redirects, respond services) and the exchange's
 * callbacks that frame the backend's response for the client.
 */

#include "proxy/http/h1_conn.h"

#include <string.h>

#include <event2/buffer.h>

#include "proxy/http/head_out.h"
#include "proxy/http/response.h"
#include "proxy/net/direct_write.h"

struct evbuffer *h1_out(struct h1_conn *c)
{
	return c->staging ? c->stage : conn_io_output(c->io);
}

struct evbuffer *h1_stage_begin(struct h1_conn *c)
{
	if (!c->staging && evbuffer_get_length(conn_io_output(c->io)) == 0 &&
	    (c->stage || (c->stage = worker_buf_take(c->w))))
		c->staging = true;
	return h1_out(c);
}

void h1_push(struct h1_conn *c)
{
	if (!c->stage || evbuffer_get_length(c->stage) == 0)
		return;
	struct evbuffer *out = conn_io_output(c->io);
	conn_io_write(c->io, c->stage);
	c->staging = evbuffer_get_length(out) == 0;
	/* No write callback follows a direct write: a backend paused for the
	 * backlog is resumed here instead. */
	if (c->in_exchange && evbuffer_get_length(out) < H1_LOW_WATER)
		exchange_response_drained(&c->txn->ex);
}

/* h1_push_last: the staged bytes are the connection's last (closing
 * without lingering): they and the close_notify go in one write. */
void h1_push_last(struct h1_conn *c)
{
	conn_io_write_last(c->io, c->stage);
	c->staging = false;
}

/* h1_write_status: status line and portier's own headers for a response. */
static void h1_write_status(struct h1_conn *c, struct evbuffer *out, int status)
{
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, response_reason(status));
	if (c->in_request)
		evbuffer_add_printf(out, "X-Request-Id: %s\r\n", c->txn->req.id);
}

/* h1_respond: a complete response portier makes itself. */
void h1_respond(struct h1_conn *c, int status, const char *ctype, const char *body,
		size_t body_len, const char *extra)
{
	struct evbuffer *out = h1_stage_begin(c);
	if (c->w->draining)
		c->close_after = true;
	h1_write_status(c, out, status);
	evbuffer_add_printf(out, "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", ctype,
			    body_len, extra ? extra : "", c->close_after ? "Connection: close\r\n" : "");
	if (!(c->in_request && c->txn->req.is_head))
		evbuffer_add(out, body, body_len);
	c->resp_head_sent = true;
	if (c->in_request) {
		c->txn->req.status = status;
		c->txn->req.bytes_out += body_len;
	}
}

/* h1_error: answer status with a short text body. Errors that leave the
 * request body unread close the connection. */
void h1_error(struct h1_conn *c, int status, bool close)
{
	char body[128];
	size_t n = response_error_body(body, sizeof body, status, c->in_request ? c->txn->req.id : NULL);
	if (close)
		c->close_after = true;
	/* A refused request whose body is still coming: read it away before closing. */
	if (close && c->in_request &&
	    (c->state == H1_BODY || (c->state == H1_HEAD && (c->txn->req.content_length > 0 || c->txn->req.chunked))))
		c->linger_wanted = true;
	h1_respond(c, status, "text/plain; charset=utf-8", body, n, NULL);
}

/* h1_finish_response: after portier's own answer or the backend's. */
void h1_finish_response(struct h1_conn *c)
{
	h1_end_request(c);
	if (c->close_after || c->w->draining) {
		h1_close_after_flush(c);
		return;
	}
	c->state = H1_HEAD;
	c->resp_head_sent = false;
	event_active(c->kick, 0, 0);
}

/* Exchange callbacks: the response side. */

static void h1_resp_head(struct exchange *ex, unsigned status, const struct h1_header *hs,
			 size_t n, int64_t content_length, bool bodiless)
{
	struct h1_conn *c = h1_of(ex);
	struct req *r = &c->txn->req;
	struct evbuffer *out = h1_stage_begin(c);
	r->status = (int)status;
	if (c->w->draining || !r->keep_alive)
		c->close_after = true;
	/* Room for the head and a small body in one chain: a TLS record is
	 * written per chain, so this saves a record and a write. */
	evbuffer_expand(out, DIRECT_WRITE_COALESCE);
	struct head_out h;
	head_out_begin(&h, out);
	HEAD_OUT_LIT(&h, "HTTP/1.1 ");
	head_out_uint(&h, status, 10);
	HEAD_OUT_LIT(&h, " ");
	head_out_str(&h, response_reason((int)status));
	HEAD_OUT_LIT(&h, "\r\n");
	bool has_id = false;
	for (size_t i = 0; i < n; i++) {
		if (h1_token_eq(hs[i].name, hs[i].name_len, "x-request-id"))
			has_id = true;
		head_out_field(&h, hs[i].name, hs[i].name_len, hs[i].value, hs[i].value_len);
	}
	if (!has_id) {
		HEAD_OUT_LIT(&h, "X-Request-Id: ");
		head_out_str(&h, r->id);
		HEAD_OUT_LIT(&h, "\r\n");
	}
	if (r->tls && r->route.tenant->hsts)
		HEAD_OUT_LIT(&h, "Strict-Transport-Security: max-age=31536000\r\n");
	c->resp_chunked = false;
	if (status == 101) {
		HEAD_OUT_LIT(&h, "Connection: upgrade\r\n");
	} else if (!bodiless) {
		if (content_length >= 0) {
			HEAD_OUT_LIT(&h, "Content-Length: ");
			head_out_uint(&h, (uint64_t)content_length, 10);
			HEAD_OUT_LIT(&h, "\r\n");
		} else if (r->protocol[7] == '1') { /* HTTP/1.1 client: keep the connection */
			c->resp_chunked = true;
			HEAD_OUT_LIT(&h, "Transfer-Encoding: chunked\r\n");
		} else {
			c->close_after = true; /* HTTP/1.0: the end of the body is the close */
		}
	}
	if (status != 101) {
		if (c->close_after)
			HEAD_OUT_LIT(&h, "Connection: close\r\n");
		else if (r->protocol[7] == '0')
			HEAD_OUT_LIT(&h, "Connection: keep-alive\r\n");
	}
	HEAD_OUT_LIT(&h, "\r\n");
	/* Out of memory cuts the head: the connection then ends after it, so
	 * nothing the client reads next can be taken for another answer. */
	if (head_out_end(&h) != 0)
		c->close_after = true;
	c->resp_head_sent = true;
	if (c->staging)
		event_active(c->kick, 0, 0); /* the head leaves before a slow body */
}

static void h1_resp_data(struct exchange *ex, struct evbuffer *src, size_t n)
{
	struct h1_conn *c = h1_of(ex);
	struct evbuffer *out = h1_out(c);
	if (c->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	direct_write_move(out, src, n);
	if (c->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	c->txn->req.bytes_out += n;
	if (c->staging)
		event_active(c->kick, 0, 0); /* a streamed body leaves as it comes */
}

static void h1_resp_copy(struct exchange *ex, const char *p, size_t n)
{
	struct h1_conn *c = h1_of(ex);
	struct evbuffer *out = h1_out(c);
	if (n == 0)
		return;
	if (c->resp_chunked)
		evbuffer_add_printf(out, "%zx\r\n", n);
	evbuffer_add(out, p, n);
	if (c->resp_chunked)
		evbuffer_add(out, "\r\n", 2);
	c->txn->req.bytes_out += n;
	if (c->staging)
		event_active(c->kick, 0, 0);
}

static void h1_resp_end(struct exchange *ex)
{
	struct h1_conn *c = h1_of(ex);
	if (c->resp_chunked)
		evbuffer_add(h1_out(c), "0\r\n\r\n", 5);
	if (c->state == H1_BODY || c->state == H1_TUNNEL)
		c->close_after = true; /* the backend answered before the body ended */
	h1_finish_response(c);
}

static void h1_upgraded(struct exchange *ex)
{
	struct h1_conn *c = h1_of(ex);
	c->state = H1_TUNNEL;
	c->close_after = true;
	conn_io_timeouts(c->io, NULL, NULL);
	conn_io_read_on(c->io);
	if (evbuffer_get_length(conn_io_input(c->io)))
		h1_read(c->io, c);
}

static void h1_send_continue(struct exchange *ex)
{
	struct h1_conn *c = h1_of(ex);
	if (c->state == H1_BODY && c->body_seen == 0 && !c->resp_head_sent) {
		evbuffer_add(h1_stage_begin(c), "HTTP/1.1 100 Continue\r\n\r\n", 25);
		if (c->staging)
			event_active(c->kick, 0, 0);
	}
}

static void h1_failed(struct exchange *ex, int status, const char *why)
{
	struct h1_conn *c = h1_of(ex);
	(void)why;
	if (c->resp_head_sent) {
		/* Mid-response: the client must see a broken message, not a short one. */
		h1_abort(c);
		return;
	}
	h1_error(c, status, c->state == H1_BODY || c->state == H1_TUNNEL);
	h1_finish_response(c);
}

static size_t h1_resp_backlog(struct exchange *ex)
{
	struct h1_conn *c = h1_of(ex);
	return evbuffer_get_length(conn_io_output(c->io)) +
	       (c->stage ? evbuffer_get_length(c->stage) : 0);
}

static void h1_request_resume(struct exchange *ex)
{
	struct h1_conn *c = h1_of(ex);
	if (c->state != H1_BODY && c->state != H1_TUNNEL)
		return;
	conn_io_read_on(c->io);
	if (evbuffer_get_length(conn_io_input(c->io)))
		h1_read(c->io, c);
}

const struct front_ops h1_ops = {
	.response_head = h1_resp_head,
	.response_data = h1_resp_data,
	.response_copy = h1_resp_copy,
	.response_end = h1_resp_end,
	.upgraded = h1_upgraded,
	.send_continue = h1_send_continue,
	.failed = h1_failed,
	.response_backlog = h1_resp_backlog,
	.request_resume = h1_request_resume,
};

