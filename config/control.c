#include "config/control.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "config/fileio.h"
#include "config/tenant_load.h"

#define CONTROL_MAX_BODY (1024 * 1024)
#define CONTROL_MAX_HEADERS (16 * 1024)
#define CONTROL_TIMEOUT_S 30

struct control {
	struct evhttp *http;
	struct edge *edge;
	const struct control_ops *ops;
	char *socket_path;
	char *tenants_file;
};

/* Answers. */

static void control_send_json(struct evhttp_request *req, int status, json_t *doc)
{
	struct evbuffer *out = evbuffer_new();
	char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (out && text) {
		evbuffer_add(out, text, strlen(text));
		evbuffer_add(out, "\n", 1);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, status, NULL, out);
	free(text);
	if (out)
		evbuffer_free(out);
	json_decref(doc);
}

static void control_send_error(struct evhttp_request *req, int status, const char *field,
			       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void control_send_error(struct evhttp_request *req, int status, const char *field,
			       const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *doc = json_pack("{s:s}", "error", msg);
	if (doc && field)
		json_object_set_new(doc, "field", json_string(field));
	control_send_json(req, status, doc);
}

/* control_send_cfg_err: an error from validation; `strip` is a field prefix
 * ("tenants.NAME.") removed so fields read relative to the tenant sent. */
static void control_send_cfg_err(struct evhttp_request *req, const struct cfg_err *err,
				 const char *strip)
{
	const char *field = err->field;
	size_t n = strip ? strlen(strip) : 0;
	if (n && strncmp(field, strip, n) == 0)
		field = field + n;
	json_t *doc = json_pack("{s:s,s:s}", "error", err->message, "field", field);
	if (doc && err->tenant[0])
		json_object_set_new(doc, "tenant", json_string(err->tenant));
	control_send_json(req, err->status >= 400 ? err->status : 400, doc);
}

static json_t *control_generation(uint64_t gen)
{
	return json_pack("{s:I}", "generation", (json_int_t)gen);
}

/* Reading the request. */

/* control_body: the JSON body, or NULL with the answer already sent. */
static json_t *control_body(struct evhttp_request *req)
{
	const char *ctype =
		evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	/* curl -d sends application/x-www-form-urlencoded: operators type that, so
	 * it is read as JSON too; any other declared type is refused. */
	if (ctype && strncasecmp(ctype, "application/json", 16) != 0 &&
	    strncasecmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		control_send_error(req, 415, NULL, "Content-Type must be application/json, not %s",
				   ctype);
		return NULL;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	if (len > CONTROL_MAX_BODY) {
		control_send_error(req, 413, NULL, "request body over %d bytes", CONTROL_MAX_BODY);
		return NULL;
	}
	const char *text = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		control_send_error(req, 400, "", "malformed JSON at line %d, column %d: %s",
				   jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		control_send_error(req, 400, "", "the body must be a JSON object");
		return NULL;
	}
	return doc;
}

/* control_if_match: false (answer sent) when If-Match names another generation. */
static bool control_if_match(struct control *c, struct evhttp_request *req)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), "If-Match");
	if (!v)
		return true;
	char buf[32];
	size_t len = strlen(v);
	if (len >= 2 && v[0] == '"' && v[len - 1] == '"') { /* an ETag-style "N" */
		v++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof buf) {
		control_send_error(req, 400, "If-Match", "If-Match must be a generation number");
		return false;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	char *end;
	errno = 0;
	unsigned long long want = strtoull(buf, &end, 10);
	if (errno || *end || buf[0] < '0' || buf[0] > '9') {
		control_send_error(req, 400, "If-Match", "If-Match must be a generation number");
		return false;
	}
	uint64_t gen = snapshot_generation(c->ops->routes(c->edge));
	if (want != gen) {
		json_t *doc = json_pack("{s:s,s:I}", "error",
					"the table changed since that generation; read it again",
					"generation", (json_int_t)gen);
		control_send_json(req, 412, doc);
		return false;
	}
	return true;
}

/* Building the next table. */

/* control_copy_tenants: the current table's tenants, re-parsed from their
 * JSON (tenants are immutable and owned by the snapshot), leaving out
 * `skip` and leaving room for one more. */
static int control_copy_tenants(struct control *c, const char *skip, struct cfg_tenants *out,
				struct cfg_err *err)
{
	const struct cfg_tenants *cur = snapshot_tenants(c->ops->routes(c->edge));
	out->v = calloc(cur->n + 1, sizeof *out->v);
	out->n = 0;
	if (!out->v) {
		cfg_err_set(err, 500, "", "out of memory");
		return -1;
	}
	for (size_t i = 0; i < cur->n; i++) {
		const struct cfg_tenant *t = &cur->v[i];
		if (skip && strcmp(t->name, skip) == 0)
			continue;
		if (cfg_tenant_from_json(t->name, t->json, &out->v[out->n], err) < 0) {
			err->status = 500; /* the running table no longer loads: say so */
			cfg_tenants_clear(out);
			return -1;
		}
		out->n++;
	}
	return 0;
}

/* control_commit: compile ts into the next generation, persist, publish.
 * Takes ts. Returns the new generation, or 0 with err. */
static uint64_t control_commit(struct control *c, struct cfg_tenants *ts, bool dry_run,
			       struct cfg_err *err)
{
	struct route_snapshot *cur = c->ops->routes(c->edge);
	uint64_t gen = snapshot_generation(cur) + 1;
	struct route_snapshot *next = snapshot_build(ts, gen, cur, err);
	cfg_tenants_clear(ts);
	if (!next)
		return 0;
	if (dry_run) {
		snapshot_release(next);
		return gen;
	}
	if (control_persist(c->tenants_file, next, err) < 0) {
		snapshot_release(next);
		return 0;
	}
	c->ops->publish(c->edge, next);
	return gen;
}

int control_persist(const char *path, const struct route_snapshot *snap, struct cfg_err *err)
{
	json_t *doc = cfg_tenants_to_json(snapshot_tenants(snap));
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	if (!text) {
		cfg_err_set(err, 500, "", "out of memory");
		return -1;
	}
	char dir[PATH_MAX], base[PATH_MAX], msg[512];
	snprintf(dir, sizeof dir, "%s", path);
	snprintf(base, sizeof base, "%s", path);
	size_t len = strlen(text);
	text[len++] = '\n'; /* json_dumps leaves room: replace the NUL, length is explicit */
	int rc = fileio_write_atomic(dirname(dir), basename(base), text, len, 0600, msg, sizeof msg);
	free(text);
	if (rc < 0) {
		cfg_err_set(err, 500, "", "cannot save the tenants file: %s", msg);
		return -1;
	}
	return 0;
}

/* Handlers. */

static void control_tenants_list(struct control *c, struct evhttp_request *req)
{
	struct route_snapshot *cur = c->ops->routes(c->edge);
	json_t *doc = cfg_tenants_to_json(snapshot_tenants(cur));
	json_t *tenants = doc ? json_incref(json_object_get(doc, "tenants")) : NULL;
	json_decref(doc);
	control_send_json(req, 200, json_pack("{s:I,s:o}", "generation",
					      (json_int_t)snapshot_generation(cur), "tenants",
					      tenants ? tenants : json_object()));
}

static const struct cfg_tenant *control_find(struct control *c, const char *name)
{
	const struct cfg_tenants *ts = snapshot_tenants(c->ops->routes(c->edge));
	for (size_t i = 0; i < ts->n; i++)
		if (strcmp(ts->v[i].name, name) == 0)
			return &ts->v[i];
	return NULL;
}

static void control_tenant_get(struct control *c, struct evhttp_request *req, const char *name)
{
	const struct cfg_tenant *t = control_find(c, name);
	if (!t) {
		control_send_error(req, 404, NULL, "no tenant '%s'", name);
		return;
	}
	uint64_t gen = snapshot_generation(c->ops->routes(c->edge));
	control_send_json(req, 200, json_pack("{s:I,s:s,s:O}", "generation", (json_int_t)gen, "name",
					      name, "tenant", t->json));
}

/* control_tenant_put: create or replace one tenant; the others are untouched. */
static void control_tenant_put(struct control *c, struct evhttp_request *req, const char *name,
			       bool dry_run)
{
	json_t *body = control_body(req);
	if (!body)
		return;
	struct cfg_err err = {0};
	struct cfg_tenant t = {0};
	if (cfg_tenant_from_json(name, body, &t, &err) < 0) {
		json_decref(body);
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	json_decref(body);
	bool existed = control_find(c, name) != NULL;
	if (!existed && snapshot_tenants(c->ops->routes(c->edge))->n >= CFG_TENANTS_MAX) {
		cfg_tenant_clear(&t);
		control_send_error(req, 400, "", "the table is full: at most %d tenants",
				   CFG_TENANTS_MAX);
		return;
	}
	struct cfg_tenants ts;
	if (control_copy_tenants(c, name, &ts, &err) < 0) {
		cfg_tenant_clear(&t);
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	/* Last, so a host conflict is reported against the tenant being changed. */
	ts.v[ts.n++] = t;
	uint64_t gen = control_commit(c, &ts, dry_run, &err);
	if (!gen) {
		char strip[128];
		snprintf(strip, sizeof strip, "tenants.%s.", name);
		control_send_cfg_err(req, &err, strip);
		return;
	}
	if (dry_run)
		control_send_json(req, 200, json_pack("{s:b}", "ok", 1));
	else
		control_send_json(req, existed ? 200 : 201, control_generation(gen));
}

static void control_tenant_delete(struct control *c, struct evhttp_request *req, const char *name)
{
	if (!control_find(c, name)) {
		control_send_error(req, 404, NULL, "no tenant '%s'", name);
		return;
	}
	struct cfg_err err = {0};
	struct cfg_tenants ts;
	if (control_copy_tenants(c, name, &ts, &err) < 0) {
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	uint64_t gen = control_commit(c, &ts, false, &err);
	if (!gen) {
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	control_send_json(req, 200, control_generation(gen));
}

/* control_validate: a whole document, or one tenant (?name=) against the table. */
static void control_validate(struct control *c, struct evhttp_request *req, const char *query)
{
	char name[80] = "dry-run";
	struct evkeyvalq q = {0};
	if (query && evhttp_parse_query_str(query, &q) == 0) {
		const char *n = evhttp_find_header(&q, "name");
		if (n)
			snprintf(name, sizeof name, "%s", n);
		evhttp_clear_headers(&q);
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *text = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
	json_t *peek = len <= CONTROL_MAX_BODY ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)
					       : NULL;
	bool document = json_is_object(peek) && json_object_get(peek, "tenants");
	json_decref(peek);
	if (!document) {
		if (!tenant_name_valid(name)) {
			control_send_error(req, 400, "name", "invalid tenant name '%s'", name);
			return;
		}
		control_tenant_put(c, req, name, true);
		return;
	}
	json_t *body = control_body(req);
	if (!body)
		return;
	struct cfg_err err = {0};
	struct cfg_tenants ts = {0};
	int rc = cfg_tenants_from_json(body, &ts, &err);
	json_decref(body);
	if (rc < 0) {
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	struct route_snapshot *snap = snapshot_build(&ts, 0, NULL, &err);
	cfg_tenants_clear(&ts);
	if (!snap) {
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	snapshot_release(snap);
	control_send_json(req, 200, json_pack("{s:b}", "ok", 1));
}

static void control_reload(struct control *c, struct evhttp_request *req)
{
	struct cfg_err err = {0};
	if (c->ops->reload(c->edge, &err) < 0) {
		control_send_cfg_err(req, &err, NULL);
		return;
	}
	control_send_json(req, 200,
			  control_generation(snapshot_generation(c->ops->routes(c->edge))));
}

static void control_cert_renew(struct control *c, struct evhttp_request *req, const char *host)
{
	if (c->ops->cert_renew(c->edge, host) < 0) {
		control_send_error(req, 404, NULL, "no tenant routes %s with TLS", host);
		return;
	}
	control_send_json(req, 202, json_pack("{s:s,s:s}", "host", host, "state", "renewing"));
}

static void control_metrics(struct control *c, struct evhttp_request *req)
{
	struct evbuffer *out = evbuffer_new();
	if (!out) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	c->ops->metrics(c->edge, out);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, NULL, out);
	evbuffer_free(out);
}

/* Dispatch: path and method to handler. */

static bool control_method(struct evhttp_request *req, enum evhttp_cmd_type want,
			   const char *allow)
{
	if (evhttp_request_get_command(req) == want)
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	control_send_error(req, 405, NULL, "method not allowed here (allowed: %s)", allow);
	return false;
}

/* control_segment: the decoded path segment after prefix, up to the next '/'
 * (rest points there), or false. */
static bool control_segment(const char *path, const char *prefix, char *out, size_t cap,
			    const char **rest)
{
	size_t n = strlen(prefix);
	if (strncmp(path, prefix, n) != 0)
		return false;
	const char *seg = path + n;
	const char *end = strchr(seg, '/');
	size_t len = end ? (size_t)(end - seg) : strlen(seg);
	if (len == 0 || len >= cap)
		return false;
	char raw[256];
	if (len >= sizeof raw)
		return false;
	memcpy(raw, seg, len);
	raw[len] = '\0';
	char *dec = evhttp_uridecode(raw, 0, NULL);
	if (!dec)
		return false;
	snprintf(out, cap, "%s", dec);
	free(dec);
	*rest = end ? end : "";
	return true;
}

static void control_tenant(struct control *c, struct evhttp_request *req, const char *name)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_PUT && m != EVHTTP_REQ_DELETE) {
		control_method(req, EVHTTP_REQ_GET, "GET, PUT, DELETE");
		return;
	}
	if (!tenant_name_valid(name)) {
		control_send_error(req, 400, "name",
				   "invalid tenant name '%s': use [a-z0-9][a-z0-9-]{0,62}", name);
		return;
	}
	if (m == EVHTTP_REQ_GET) {
		control_tenant_get(c, req, name);
		return;
	}
	if (!control_if_match(c, req))
		return;
	if (m == EVHTTP_REQ_PUT)
		control_tenant_put(c, req, name, false);
	else
		control_tenant_delete(c, req, name);
}

static void control_dispatch(struct evhttp_request *req, void *arg)
{
	struct control *c = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	char seg[256];
	const char *rest;
	if (!path) {
		control_send_error(req, 400, NULL, "bad request target");
	} else if (strcmp(path, "/v1/tenants") == 0 || strcmp(path, "/v1/tenants/") == 0) {
		if (control_method(req, EVHTTP_REQ_GET, "GET"))
			control_tenants_list(c, req);
	} else if (control_segment(path, "/v1/tenants/", seg, sizeof seg, &rest) && !*rest) {
		control_tenant(c, req, seg);
	} else if (strcmp(path, "/v1/validate") == 0) {
		if (control_method(req, EVHTTP_REQ_POST, "POST"))
			control_validate(c, req, query);
	} else if (strcmp(path, "/v1/reload") == 0) {
		if (control_method(req, EVHTTP_REQ_POST, "POST"))
			control_reload(c, req);
	} else if (strcmp(path, "/v1/certs") == 0) {
		if (control_method(req, EVHTTP_REQ_GET, "GET"))
			control_send_json(req, 200, c->ops->certs(c->edge));
	} else if (control_segment(path, "/v1/certs/", seg, sizeof seg, &rest) &&
		   strcmp(rest, "/renew") == 0) {
		if (control_method(req, EVHTTP_REQ_POST, "POST"))
			control_cert_renew(c, req, seg);
	} else if (strcmp(path, "/v1/status") == 0) {
		if (control_method(req, EVHTTP_REQ_GET, "GET"))
			control_send_json(req, 200, c->ops->status(c->edge));
	} else if (strcmp(path, "/metrics") == 0) {
		if (control_method(req, EVHTTP_REQ_GET, "GET"))
			control_metrics(c, req);
	} else {
		control_send_error(req, 404, NULL, "no such endpoint: %s", path);
	}
}

/* control_listen: a unix socket at path with mode; a stale socket is replaced. */
static int control_listen(const char *path, unsigned mode, char *errbuf, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(path);
	if (len >= sizeof sa.sun_path) {
		snprintf(errbuf, errlen, "control.socket: %s: path too long", path);
		return -1;
	}
	memcpy(sa.sun_path, path, len + 1);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(errbuf, errlen, "control.socket: %s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* The umask makes the socket private from the start; chmod sets the exact mode. */
	mode_t old = umask(0777 & ~(mode_t)mode);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || chmod(path, (mode_t)mode) < 0 || listen(fd, 64) < 0)
		goto fail;
	return fd;
fail:
	snprintf(errbuf, errlen, "control.socket: %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

struct control *control_new(struct event_base *base, const char *socket_path, unsigned mode,
			    const char *tenants_file, struct edge *e, const struct control_ops *ops,
			    char *errbuf, size_t errlen)
{
	struct control *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	c->edge = e;
	c->ops = ops;
	c->socket_path = strdup(socket_path);
	c->tenants_file = strdup(tenants_file);
	c->http = evhttp_new(base);
	if (!c->socket_path || !c->tenants_file || !c->http) {
		snprintf(errbuf, errlen, "out of memory");
		control_free(c);
		return NULL;
	}
	int fd = control_listen(socket_path, mode, errbuf, errlen);
	struct evconnlistener *l =
		fd < 0 ? NULL
		       : evconnlistener_new(base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd);
	if (!l || !evhttp_bind_listener(c->http, l)) {
		if (fd >= 0 && !l)
			close(fd);
		if (l)
			evconnlistener_free(l);
		if (fd >= 0)
			snprintf(errbuf, errlen, "control.socket: %s: cannot serve", socket_path);
		free(c->socket_path);
		c->socket_path = NULL; /* not ours to unlink */
		control_free(c);
		return NULL;
	}
	evhttp_set_max_body_size(c->http, CONTROL_MAX_BODY);
	evhttp_set_max_headers_size(c->http, CONTROL_MAX_HEADERS);
	evhttp_set_timeout(c->http, CONTROL_TIMEOUT_S);
	evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
						   EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
						   EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(c->http, control_dispatch, c);
	return c;
}

void control_free(struct control *c)
{
	if (!c)
		return;
	if (c->http)
		evhttp_free(c->http);
	if (c->socket_path)
		unlink(c->socket_path);
	free(c->socket_path);
	free(c->tenants_file);
	free(c);
}
