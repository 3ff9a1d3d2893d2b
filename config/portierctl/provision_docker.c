/*
 * provision_docker.c - `docker compose` as a child process. The child gets
 * the argument vector as it is: no shell, so tenant names and paths are
 * never interpreted.
 */
#include "config/portierctl/provision_docker.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROV_DOCKER_PATH_DIRS_MAX 256 /* $PATH entries looked at */

bool prov_docker_find(char *out, size_t outlen)
{
	const char *path = getenv("PATH");
	unsigned dirs = 0;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path && dirs++ < PROV_DOCKER_PATH_DIRS_MAX) {
		const char *end = strchr(path, ':');
		size_t len = end ? (size_t)(end - path) : strlen(path);
		struct stat sb;
		int n;

		if (len > 0 && path[0] == '/') {
			n = snprintf(out, outlen, "%.*s/docker", (int)len, path);
			if (n > 0 && (size_t)n < outlen && stat(out, &sb) == 0 &&
			    S_ISREG(sb.st_mode) && access(out, X_OK) == 0)
				return true;
		}
		if (!end)
			break;
		path = end + 1;
	}
	if (outlen)
		out[0] = '\0';
	return false;
}

int prov_docker_run(const char *path, char *const argv[], char *err, size_t errlen)
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: %s", path, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execv(path, argv);
		fprintf(stderr, "portierctl: cannot run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "waiting for %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

/* prov_docker_plain: whether s can be pasted into a shell without quotes. */
static bool prov_docker_plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			    "-_./=:,@+%", *s))
			return false;
	return true;
}

void prov_docker_cmdline(char *const argv[], char *out, size_t outlen)
{
	size_t o = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	for (size_t i = 0; argv[i] && o + 1 < outlen; i++) {
		const char *a = argv[i];

		if (i > 0)
			out[o++] = ' ';
		if (prov_docker_plain(a)) {
			for (; *a && o + 1 < outlen; a++)
				out[o++] = *a;
			continue;
		}
		/* 'it'\''s': close the quote, an escaped quote, reopen. */
		if (o + 1 < outlen)
			out[o++] = '\'';
		for (; *a && o + 5 < outlen; a++) {
			if (*a == '\'') {
				memcpy(out + o, "'\\''", 4);
				o += 4;
			} else {
				out[o++] = *a;
			}
		}
		if (o + 1 < outlen)
			out[o++] = '\'';
	}
	out[o < outlen ? o : outlen - 1] = '\0';
}
