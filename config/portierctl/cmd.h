/*
 * cmd.h - what portierctl's own commands share beyond ctl.h: their usage
 * lines, the entry points main.c dispatches to, and the request helpers of
 * client.c that turn an answer into output and an exit code.
 */
#pragma once

#include <stddef.h>

#include <jansson.h>

#include "config/portierctl/ctl.h"

/* Usage lines, without the leading "portierctl [-s SOCKET] [--json] ". */
#define CMD_USAGE_TENANT_ADD                                                                 \
	"tenant add NAME --host H [--host H ...] --backend ADDR [--backend ADDR ...]\n"      \
	"                  [--rate N/PERIOD] [--burst N] [--per tenant|client_ip]\n"         \
	"                  [--tls acme|internal|off]"
#define CMD_USAGE_TENANT_RM "tenant rm NAME"
#define CMD_USAGE_TENANT_LS "tenant ls"
#define CMD_USAGE_TENANT_SHOW "tenant show NAME"
#define CMD_USAGE_TENANT_PROVISION                                                           \
	"tenant provision NAME --domain DOMAIN [--template DIR] [--out DIR] [--up] [--force]"
#define CMD_USAGE_TENANT_DEPROVISION "tenant deprovision NAME [--out DIR] [--down] [--purge]"
#define CMD_USAGE_TENANT_IMPORT "tenant import-traefik COMPOSE_FILE [--tenant NAME] [--apply]"
#define CMD_USAGE_CERT_LS "cert ls"
#define CMD_USAGE_CERT_RENEW "cert renew HOST"
#define CMD_USAGE_STATUS "status"
#define CMD_USAGE_RELOAD "reload"
#define CMD_USAGE_CHECK "check FILE"

/* Limits on what portierctl reads: answers and files given to check. */
#define CTL_MAX_ANSWER (64u * 1024 * 1024)
#define CTL_MAX_FILE (64u * 1024 * 1024)

/* cmd_usage_error (main.c): print "portierctl: WHAT" and the usage line to
 * stderr; returns CTL_USAGE. */
int cmd_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Commands (cmd_tenant.c, cmd_misc.c). argv[0] is the first argument after
 * the command's words, argv[argc] is NULL; --json and -h are already gone.
 * They return a ctl_exit code. */
int cmd_tenant_add(const struct ctl *c, int argc, char **argv);
int cmd_tenant_rm(const struct ctl *c, int argc, char **argv);
int cmd_tenant_ls(const struct ctl *c, int argc, char **argv);
int cmd_tenant_show(const struct ctl *c, int argc, char **argv);
int cmd_cert_ls(const struct ctl *c, int argc, char **argv);
int cmd_cert_renew(const struct ctl *c, int argc, char **argv);
int cmd_status(const struct ctl *c, int argc, char **argv);
int cmd_reload(const struct ctl *c, int argc, char **argv);
int cmd_check(const struct ctl *c, int argc, char **argv);

/* ctl_request: ctl_call and the handling every command shares. Unreachable:
 * the reason on stderr, CTL_UNREACHABLE. A status other than 2xx: with
 * --json the answer on stdout, else ctl_report_error; CTL_REJECTED. 2xx:
 * CTL_OK with *out the answer (NULL when not JSON; caller decrefs), already
 * printed with --json so that the caller prints nothing more. *status (may
 * be NULL) gets the HTTP status, 0 when unreachable. */
int ctl_request(const struct ctl *c, const char *method, const char *path, json_t *body,
		int *status, json_t **out);

/* ctl_report_error_as: ctl_report_error with "PREFIX: " instead of
 * "portier: " (check names the file). Returns CTL_REJECTED. */
int ctl_report_error_as(const char *prefix, int status, const json_t *answer);

/* ctl_print_json: answer on stdout, indented by 2, nothing for NULL; non-ASCII
 * is escaped so that no control character reaches the terminal. */
void ctl_print_json(const json_t *answer);

/* ctl_path_escape: s percent-encoded for one path segment or query value
 * (everything but A-Z a-z 0-9 - . _ ~ * is encoded) into out. -1 when it
 * does not fit in outlen. */
int ctl_path_escape(const char *s, char *out, size_t outlen);

/* ctl_json_text: a scalar JSON value as text: strings as they are, numbers
 * and booleans formatted in buf; "-" for NULL, null, arrays and objects.
 * The result is borrowed from v or buf. */
const char *ctl_json_text(const json_t *v, char *buf, size_t buflen);
