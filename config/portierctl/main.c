/*
 * main.c - portierctl: global options, the command table and dispatch
 * (DESIGN.md section 5). Commands live in cmd_tenant.c, cmd_misc.c,
 * provision.c and import_traefik.c; the socket exchange in client.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/portierctl/cmd.h"
#include "config/portierctl/ctl.h"

#ifndef PORTIER_VERSION
#define PORTIER_VERSION "unknown"
#endif

/* One command: its words ("tenant" "add", or "status" and NULL). */
struct ctl_command {
	const char *group;
	const char *name;
	const char *usage;
	int (*run)(const struct ctl *c, int argc, char **argv);
};

static const struct ctl_command ctl_commands[] = {
	{"tenant", "add", CMD_USAGE_TENANT_ADD, cmd_tenant_add},
	{"tenant", "rm", CMD_USAGE_TENANT_RM, cmd_tenant_rm},
	{"tenant", "ls", CMD_USAGE_TENANT_LS, cmd_tenant_ls},
	{"tenant", "show", CMD_USAGE_TENANT_SHOW, cmd_tenant_show},
	{"tenant", "provision", CMD_USAGE_TENANT_PROVISION, cmd_tenant_provision},
	{"tenant", "deprovision", CMD_USAGE_TENANT_DEPROVISION, cmd_tenant_deprovision},
	{"tenant", "import-traefik", CMD_USAGE_TENANT_IMPORT, cmd_tenant_import_traefik},
	{"cert", "ls", CMD_USAGE_CERT_LS, cmd_cert_ls},
	{"cert", "renew", CMD_USAGE_CERT_RENEW, cmd_cert_renew},
	{"status", NULL, CMD_USAGE_STATUS, cmd_status},
	{"reload", NULL, CMD_USAGE_RELOAD, cmd_reload},
	{"check", NULL, CMD_USAGE_CHECK, cmd_check},
};

#define CTL_NCOMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

/* ctl_put_usage: prefix then usage; continuation lines of usage are indented
 * under the command's arguments. */
static void ctl_put_usage(FILE *out, const char *prefix, const char *usage)
{
	size_t indent = strlen(prefix) + 4;

	fputs(prefix, out);
	for (const char *p = usage; *p; p++) {
		fputc(*p, out);
		if (*p != '\n')
			continue;
		while (p[1] == ' ')
			p++;
		for (size_t i = 0; i < indent; i++)
			fputc(' ', out);
	}
	fputc('\n', out);
}

/* ctl_help: the full usage; group limits the commands to one group. */
static void ctl_help(FILE *out, const char *group)
{
	fputs("usage: portierctl [-s SOCKET] [--json] COMMAND\n\ncommands:\n", out);
	for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
		if (!group || strcmp(group, ctl_commands[i].group) == 0)
			ctl_put_usage(out, "  ", ctl_commands[i].usage);
	}
	if (group)
		return;
	fputs("\noptions:\n"
	      "  -s, --socket SOCKET  the edge's control socket (default: $PORTIER_SOCKET,\n"
	      "                       else " CTL_DEFAULT_SOCKET ")\n"
	      "  --json               print the API's JSON answer as it is\n"
	      "  -h, --help           this help; after a command, that command's usage\n"
	      "  --version            portierctl's version\n"
	      "\nexit codes: 0 done, 1 rejected by the edge, 2 bad usage, 3 edge unreachable\n",
	      out);
}

int cmd_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("portierctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ctl_put_usage(stderr, "usage: portierctl ", usage);
	return CTL_USAGE;
}

/* ctl_main_usage_error: a bad global option or command; the short usage. */
static int ctl_main_usage_error(const char *what, const char *arg)
{
	fprintf(stderr,
		"portierctl: %s%s\n"
		"usage: portierctl [-s SOCKET] [--json] COMMAND  (portierctl --help lists them)\n",
		what, arg ? arg : "");
	return CTL_USAGE;
}

static bool ctl_is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* ctl_strip_options: remove --json and -h/--help from the command's words
 * and arguments (up to a "--", which stays). Returns the new argc. */
static int ctl_strip_options(int argc, char **argv, struct ctl *c, bool *help)
{
	int kept = 0;
	bool options = true;

	for (int i = 0; i < argc; i++) {
		if (options && strcmp(argv[i], "--") == 0)
			options = false;
		if (options && strcmp(argv[i], "--json") == 0) {
			c->json = true;
			continue;
		}
		if (options && ctl_is_help(argv[i])) {
			*help = true;
			continue;
		}
		argv[kept++] = argv[i];
	}
	argv[kept] = NULL;
	return kept;
}

/* ctl_dispatch: find the command named by argv[0] (and argv[1]) and run it. */
static int ctl_dispatch(struct ctl *c, int argc, char **argv)
{
	const char *group = NULL;
	bool help = false;

	argc = ctl_strip_options(argc, argv, c, &help);
	if (argc == 0) {
		if (help) {
			ctl_help(stdout, NULL);
			return CTL_OK;
		}
		return ctl_main_usage_error("missing command", NULL);
	}
	if (strcmp(argv[0], "help") == 0) {
		ctl_help(stdout, NULL);
		return CTL_OK;
	}
	for (size_t i = 0; i < CTL_NCOMMANDS; i++) {
		const struct ctl_command *cmd = &ctl_commands[i];
		int words = cmd->name ? 2 : 1;

		if (strcmp(argv[0], cmd->group) != 0)
			continue;
		group = cmd->group;
		if (cmd->name && (argc < 2 || strcmp(argv[1], cmd->name) != 0))
			continue;
		if (help) {
			ctl_put_usage(stdout, "usage: portierctl ", cmd->usage);
			return CTL_OK;
		}
		return cmd->run(c, argc - words, argv + words);
	}
	if (!group)
		return ctl_main_usage_error("unknown command ", argv[0]);
	if (argc < 2) {
		if (help) {
			ctl_help(stdout, group);
			return CTL_OK;
		}
		fprintf(stderr, "portierctl: %s: missing subcommand\n", group);
		ctl_help(stderr, group);
		return CTL_USAGE;
	}
	fprintf(stderr, "portierctl: %s: unknown subcommand %s\n", group, argv[1]);
	ctl_help(stderr, group);
	return CTL_USAGE;
}

int main(int argc, char **argv)
{
	struct ctl c = {.socket = getenv("PORTIER_SOCKET"), .json = false};
	const char *socket_opt = NULL;
	int i, rc;

	if (!c.socket || !*c.socket)
		c.socket = CTL_DEFAULT_SOCKET;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--json") == 0) {
			c.json = true;
		} else if (ctl_is_help(a)) {
			ctl_help(stdout, NULL);
			return CTL_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("portierctl %s\n", PORTIER_VERSION);
			return CTL_OK;
		} else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (i + 1 >= argc)
				return ctl_main_usage_error(a, " needs a socket path");
			socket_opt = argv[++i];
		} else if (strncmp(a, "--socket=", 9) == 0) {
			socket_opt = a + 9;
		} else if (strncmp(a, "-s", 2) == 0) {
			socket_opt = a + 2;
		} else {
			return ctl_main_usage_error("unknown option ", a);
		}
	}
	if (socket_opt) {
		if (!*socket_opt)
			return ctl_main_usage_error("the socket path is empty", NULL);
		c.socket = socket_opt;
	}
	rc = ctl_dispatch(&c, argc - i, argv + i);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "portierctl: cannot write the output: %s\n", strerror(errno));
		if (rc == CTL_OK)
			rc = CTL_REJECTED;
	}
	return rc;
}
