/*
 * ctl.h - what portierctl's commands share: the connection to the edge's
 * control socket, output mode, and exit codes (DESIGN.md section 5).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum ctl_exit {
	CTL_OK = 0,          /* success */
	CTL_REJECTED = 1,    /* the edge said no (its message printed) */
	CTL_USAGE = 2,       /* bad command line */
	CTL_UNREACHABLE = 3, /* no edge on the socket */
};

struct ctl {
	const char *socket; /* -s, else $PORTIER_SOCKET, else the default path */
	bool json;          /* --json: print the API's JSON as is */
};

#define CTL_DEFAULT_SOCKET "/run/portier/control.sock"

/* ctl_call: one HTTP/1.1 request over the unix socket. body (may be NULL) is
 * sent as JSON. Returns the HTTP status with *out the parsed JSON answer
 * (NULL when the answer is not JSON; caller decrefs), or -1 when the edge
 * cannot be reached (err says why, naming the socket). */
int ctl_call(const struct ctl *c, const char *method, const char *path, json_t *body,
	     json_t **out, char *err, size_t errlen);

/* ctl_report_error: print the edge's error answer ("error", "field") to
 * stderr for a status >= 400; returns CTL_REJECTED. */
int ctl_report_error(int status, json_t *answer);

/* Commands implemented in provision.c and import_traefik.c; argv[0] is the
 * subcommand's first argument (the tenant name or the compose file). */
int cmd_tenant_provision(const struct ctl *c, int argc, char **argv);
int cmd_tenant_deprovision(const struct ctl *c, int argc, char **argv);
int cmd_tenant_import_traefik(const struct ctl *c, int argc, char **argv);
